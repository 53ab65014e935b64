"""Simulated training: a run's status, events and step metrics, derived from elapsed time.

A run is only its start time and its plan (how many steps, whether and where it fails);
everything else is a pure function of the clock, so no thread has to advance it and a
restarted sandbox picks up where the clock says it is. Durations are simulated seconds
(see clock.py): queued for QUEUED_SECONDS, then STEP_SECONDS per training step.

A run fails, half way through, when its dataset's name contains FAIL_MARKER: the documented
way to test STATUS_FAILED.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

QUEUED = "STATUS_QUEUED"
FINETUNING = "STATUS_FINETUNING"
READY = "STATUS_READY"
FAILED = "STATUS_FAILED"

QUEUED_SECONDS = 30.0
STEP_SECONDS = 3.0
MIN_STEPS = 10
MAX_STEPS = 200
FAIL_MARKER = "fail-training"
# Validation of an uploaded dataset: queued, then processing, then its verdict.
VALIDATION_QUEUED_SECONDS = 2.0
VALIDATION_SECONDS = 5.0


def plan_steps(examples: int, epochs: int, batch_size: int) -> int:
    """Steps for one run: examples * epochs / batch size, kept to a watchable range."""
    steps = math.ceil(max(examples, 1) * epochs / max(batch_size, 1))
    return min(max(steps, MIN_STEPS), MAX_STEPS)


def fail_step(dataset_name: str, total_steps: int) -> int | None:
    return total_steps // 2 if FAIL_MARKER in dataset_name.lower() else None


@dataclass(frozen=True)
class Run:
    model_id: str
    number: int  # 1 for the first training, +1 for each retraining PATCH
    started_at: float  # real epoch seconds
    total_steps: int
    fail_step: int | None
    superseded_at: float | None  # when a retraining PATCH cut it short
    user_id: str

    def at(self, offset: float, speed: float) -> float:
        """The real time at which `offset` simulated seconds into the run are reached."""
        return self.started_at + offset / speed

    def _end_offset(self) -> float:
        steps = self.total_steps if self.fail_step is None else self.fail_step + 1
        return QUEUED_SECONDS + steps * STEP_SECONDS

    def _cutoff(self, now: float) -> float:
        return now if self.superseded_at is None else min(now, self.superseded_at)

    def status(self, now: float, speed: float) -> str:
        elapsed = (now - self.started_at) * speed
        if elapsed < QUEUED_SECONDS:
            return QUEUED
        if elapsed < self._end_offset():
            return FINETUNING
        return READY if self.fail_step is None else FAILED

    def completed_at(self, now: float, speed: float) -> float | None:
        end = self.at(self._end_offset(), speed)
        return end if end <= now else None

    def events(self, now: float, speed: float) -> list[tuple[str, float, str | None]]:
        """(status, real time, user id) for each status change so far; only the first was
        caused by a user (the create or PATCH), the rest by the system."""
        final = READY if self.fail_step is None else FAILED
        timeline = [
            (QUEUED, self.started_at, self.user_id),
            (FINETUNING, self.at(QUEUED_SECONDS, speed), None),
            (final, self.at(self._end_offset(), speed), None),
        ]
        cutoff = self._cutoff(now)
        return [event for event in timeline if event[1] <= cutoff]

    def steps_done(self, now: float, speed: float) -> int:
        elapsed = (self._cutoff(now) - self.started_at) * speed
        done = math.floor((elapsed - QUEUED_SECONDS) / STEP_SECONDS)
        last = self.total_steps if self.fail_step is None else self.fail_step
        return min(max(done, 0), last)

    def metrics(self, step: int, speed: float) -> tuple[float, dict[str, float]]:
        """The real time step `step` (from 0) finished, and its metrics.

        Loss falls exponentially with noise; deterministic from the model id, run and step.
        """
        noise = random.Random(f"{self.model_id}:{self.number}:{step}")
        progress = step / max(self.total_steps - 1, 1)
        loss = 0.35 + 3.6 * math.exp(-4.0 * progress) + noise.gauss(0.0, 0.04)
        accuracy = min(0.99, 0.3 + 0.65 * (1 - math.exp(-3.0 * progress)) + noise.gauss(0, 0.01))
        values = {
            "accuracy": round(accuracy, 6),
            "cross_entropy": round(max(loss, 0.01), 6),
            "generation_accuracy": round(max(accuracy - 0.02, 0.0), 6),
            "generation_cross_entropy": round(max(loss + 0.05, 0.01), 6),
            "step": float(step),
        }
        return self.at(QUEUED_SECONDS + (step + 1) * STEP_SECONDS, speed), values


def validation_status(created_at: float, now: float, speed: float, failed: bool) -> str:
    elapsed = (now - created_at) * speed
    if elapsed < VALIDATION_QUEUED_SECONDS:
        return "queued"
    if elapsed < VALIDATION_SECONDS:
        return "processing"
    return "failed" if failed else "validated"

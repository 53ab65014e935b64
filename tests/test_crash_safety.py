"""The kill harness on a small count in CI: apply killed anywhere converges on a re-run."""

from __future__ import annotations

from crash_harness import harness


def test_apply_killed_at_sampled_points_always_converges(capsys) -> None:
    figures = harness(count=3, every=4)
    with capsys.disabled():
        print(f"\ncrash harness: {figures.line()}")
    assert figures.tried >= 10
    assert figures.killed == figures.tried  # each run really died at its point
    assert figures.failures == []
    assert (figures.converged, figures.duplicates, figures.lost_uploads) == (figures.tried, 0, 0)

"""Sizes and rates in the units people read: one spelling for plans, apply and progress."""

from __future__ import annotations


def human_size(size: float) -> str:
    """`273 B`, `2.5 KiB`, `256.5 MiB`, `1.2 GiB` (binary units, as `ls -lh` and the plan)."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{int(size)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def human_rate(per_second: float) -> str:
    """`15.0 MiB/s`."""
    return f"{human_size(per_second)}/s"


def human_duration(seconds: float) -> str:
    """`0.4s`, `17s`, `3m05s`, `1h02m`."""
    if seconds < 10:
        return f"{seconds:.1f}s"
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"

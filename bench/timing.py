"""The one timing helper the benchmarks share."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def median_time(work: Callable[[], object], repeats: int = 3) -> float:
    """The median wall time, in seconds, of ``repeats`` runs of ``work`` after one warm-up run."""
    work()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def paired_times(
    first: Callable[[], object], second: Callable[[], object], pairs: int = 7
) -> tuple[float, float, float]:
    """The median wall times of ``first`` and ``second`` run in turns (``pairs`` times each after a warm-up of
    each), and the median of the per-turn ratios second/first: a machine that slows down or speeds up during the
    run (another process, the CPU's clock) weighs on both alike, where timing all of one and then all of the other
    would put the change on one side."""
    first()
    second()
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(pairs):
        for work, found in zip((first, second), times, strict=True):
            start = time.perf_counter()
            work()
            found.append(time.perf_counter() - start)
    ratios = [b / a for a, b in zip(*times, strict=True)]
    return statistics.median(times[0]), statistics.median(times[1]), statistics.median(ratios)

"""Measuring one process under load: latency samples, CPU, memory, collector pauses, loop lag."""

from __future__ import annotations

import asyncio
import gc
import os
import resource
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

LAG_TICK_S = 0.010


@dataclass
class Samples:
    """Durations in seconds."""

    values: list[float] = field(default_factory=list)

    def add(self, value: float) -> None:
        self.values.append(value)

    def percentile(self, p: float) -> float:
        if not self.values:
            return 0.0
        ordered = sorted(self.values)
        index = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))
        return ordered[index]

    def ms(self, p: float) -> float:
        return round(self.percentile(p) * 1000, 3)

    def mean_ms(self) -> float:
        return round(statistics.fmean(self.values) * 1000, 3) if self.values else 0.0

    def line(self) -> str:
        return (
            f"p50 {self.ms(50):7.2f} ms  p99 {self.ms(99):7.2f} ms  mean {self.mean_ms():7.2f} ms"
            f"  n={len(self.values)}"
        )


def rss_mb() -> float:
    """Resident memory of this process now."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def loop_lag(stop: asyncio.Event, worst: list[float]) -> None:
    """How late a 10 ms timer fires: the longest the loop was busy with something else."""
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        due = loop.time() + LAG_TICK_S
        await asyncio.sleep(LAG_TICK_S)
        worst.append(max(0.0, loop.time() - due))


class GcPauses:
    """Durations of the garbage collector's runs: a full collection stops the event loop."""

    def __init__(self) -> None:
        self.pauses: list[tuple[float, int]] = []
        self._started = 0.0

    def __enter__(self) -> GcPauses:
        gc.callbacks.append(self._on_gc)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.pauses.append((time.perf_counter() - self._started, info["generation"]))

    def figures(self) -> dict[str, Any]:
        worst = max(self.pauses, default=(0.0, 0))
        return {
            "gc_runs": len(self.pauses),
            "gc_full_runs": sum(1 for _, generation in self.pauses if generation == 2),
            "gc_total_s": round(sum(p for p, _ in self.pauses), 3),
            "gc_pause_max_ms": round(worst[0] * 1000, 1),
        }

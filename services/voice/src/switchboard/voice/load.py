"""The worker's load as LiveKit reads it, to stop taking calls before the worker is full.

LiveKit's worker reports a load between 0 and 1 and takes no new job above its threshold
(0.7). Its default load is the pod's CPU use, which lags: a burst of dispatches can land
before the CPU shows them. Calls are counted too, against the capacity the voice
benchmark measured for one worker pod (``SB_MAX_CALLS_PER_WORKER``); the load is whichever
is higher. The same value is exported as ``lk_agents_worker_load`` (Prometheus), which the
HPA in ``deploy/k8s`` scales on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from livekit.agents import AgentServer


class _Server(Protocol):
    @property
    def active_jobs(self) -> list[object]: ...


def sdk_cpu_load(server: AgentServer) -> float:
    """LiveKit's own CPU load (moving average over 2.5 s, cgroup-aware)."""
    # The SDK exposes its default load only as this class; pinned by livekit-agents <1.9.
    from livekit.agents.worker import _DefaultLoadCalc

    return _DefaultLoadCalc.get_load(server)


class WorkerLoad:
    """``max(cpu, calls / capacity)``, capped at 1."""

    def __init__(self, max_calls: int, cpu: Callable[[AgentServer], float] = sdk_cpu_load) -> None:
        if max_calls < 1:
            raise ValueError("A worker must be able to take at least one call.")
        self._max_calls = max_calls
        self._cpu = cpu

    def __call__(self, server: AgentServer) -> float:
        calls = len(server.active_jobs) / self._max_calls
        return min(1.0, max(self._cpu(server), calls))

"""The fault plan: faults injected by request number or for every request (an outage).

Faults from the plan take precedence over the policy and do not consume its answers (a
``Script`` is not advanced by a request the plan failed), except a ``Delay`` without
``then``, after which the policy answers.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from switchboard.testing.openai_server.answers import Fault, HttpError
from switchboard.testing.openai_server.requests import Endpoint

ALL_ENDPOINTS: frozenset[Endpoint] = frozenset({"chat", "transcription", "speech", "models"})


@dataclass(frozen=True, slots=True)
class Outage:
    fault: Fault
    endpoints: frozenset[Endpoint]
    # None: every model; else only requests for these models.
    models: frozenset[str] | None


class FaultPlan:
    """Which requests fail and how; read by the server as each request arrives."""

    def __init__(self) -> None:
        self._numbered: dict[tuple[Endpoint, int], Fault] = {}
        self._outage: Outage | None = None

    def fail(self, number: int, fault: Fault, *, endpoint: Endpoint = "chat") -> None:
        """The ``number``-th request (1-based) to ``endpoint`` gets ``fault``."""
        if number < 1:
            raise ValueError("request numbers start at 1")
        self._numbered[(endpoint, number)] = fault

    def start_outage(
        self,
        fault: Fault | None = None,
        *,
        endpoints: Collection[Endpoint] = ALL_ENDPOINTS,
        models: Collection[str] | None = None,
    ) -> None:
        """Every request to ``endpoints`` (for ``models``, when given) gets ``fault``
        (default: 503) until ``end_outage``."""
        self._outage = Outage(
            fault=fault if fault is not None else HttpError.unavailable(),
            endpoints=frozenset(endpoints),
            models=frozenset(models) if models is not None else None,
        )

    def end_outage(self) -> None:
        self._outage = None

    @contextmanager
    def outage(
        self,
        fault: Fault | None = None,
        *,
        endpoints: Collection[Endpoint] = ALL_ENDPOINTS,
        models: Collection[str] | None = None,
    ) -> Iterator[None]:
        """An outage for the duration of a ``with`` block."""
        self.start_outage(fault, endpoints=endpoints, models=models)
        try:
            yield
        finally:
            self.end_outage()

    @property
    def in_outage(self) -> bool:
        return self._outage is not None

    def fault_for(self, endpoint: Endpoint, number: int, model: str | None) -> Fault | None:
        """The planned fault for this request: its numbered fault, else the outage's."""
        numbered = self._numbered.get((endpoint, number))
        if numbered is not None:
            return numbered
        outage = self._outage
        if outage is None or endpoint not in outage.endpoints:
            return None
        if outage.models is not None and model not in outage.models:
            return None
        return outage.fault

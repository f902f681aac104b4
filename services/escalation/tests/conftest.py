"""Fixtures for the router's tests: the test rules file and a request factory."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import pytest

from switchboard.contracts.escalation import (
    EscalationReason,
    EscalationRequest,
    EscalationTrigger,
)
from switchboard.escalation.rules_file import Rules, load_rules

DATA = Path(__file__).parent / "data"


class RequestFactory(Protocol):
    def __call__(self, **overrides: Any) -> EscalationRequest: ...


@pytest.fixture
def rules_path() -> Path:
    return DATA / "rules.toml"


@pytest.fixture
def rules(rules_path: Path) -> Rules:
    return load_rules(rules_path)


@pytest.fixture
def make_request() -> RequestFactory:
    """A first caller request from the triage agent about billing, in English."""

    def make(**overrides: Any) -> EscalationRequest:
        fields: dict[str, Any] = {
            "call_id": "call-1",
            "request_id": "req-1",
            "reason": EscalationReason.CALLER_REQUEST,
            "trigger": EscalationTrigger.LLM_TOOL,
            "current_agent": "triage",
            "intent": "billing",
        }
        fields.update(overrides)
        return EscalationRequest(**fields)

    return make

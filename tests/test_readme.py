"""The README documents every setting and every subject the code has."""

from __future__ import annotations

from pathlib import Path

import pytest

from switchboard.consent.settings import ConsentSettings
from switchboard.contracts.envelope import EVENTS
from switchboard.contracts.subjects import REQUESTS
from switchboard.escalation.settings import EscalationSettings
from switchboard.runtime.settings import ServiceSettings, variables
from switchboard.simulation.settings import SimulationSettings
from switchboard.sip_bridge.settings import SipBridgeSettings
from switchboard.voice.settings import VoiceSettings

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


@pytest.mark.parametrize(
    "settings",
    [
        ServiceSettings,
        ConsentSettings,
        EscalationSettings,
        SipBridgeSettings,
        VoiceSettings,
        SimulationSettings,
    ],
)
def test_every_environment_variable_is_documented(settings: type[ServiceSettings]) -> None:
    missing = [name for name, _ in variables(settings) if f"`{name}`" not in README]
    assert not missing, f"README.md does not document {missing}"


def test_every_subject_and_event_is_documented() -> None:
    for req in REQUESTS:
        assert f"`{req.subject}`" in README
    for spec in EVENTS:
        assert f"`{spec.domain}.{spec.name}`" in README


def test_the_two_commands_are_documented() -> None:
    assert "make demo" in README
    assert "make test" in README

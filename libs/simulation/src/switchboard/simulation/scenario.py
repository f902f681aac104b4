"""Scenario files: one scripted call (TOML) with what must have happened.

name = "consent granted, billing, manager, human transfer"
call_id = "scn-a"                  # a unique suffix is added per run
caller_number = "+14155550123"
trunk = "main"
language = "en"
turns = ["Yes, that's fine.", "I have a question about my bill.", ...]

[carrier]                          # the simulated sip-bridge's script for this call
outcomes = ["busy", "answer"]
ring_s = 0.05

[expect]
events_in_order = ["call.started", "consent.recorded", "call.ended"]
absent_events = ["recording.started"]
agents = ["triage", "billing", "manager"]
consent = "granted"
recording = ["started", "stopped"]
outcome = "transferred"
transfer_states = ["dialing", "answered"]
callback_requested = false
spoken = ["duty manager"]
"""

from __future__ import annotations

import tomllib
import uuid
from pathlib import Path
from typing import Annotated

import msgspec

from switchboard.contracts.call import CallOutcome
from switchboard.contracts.consent import ConsentDecision
from switchboard.contracts.simulation import SimOutcome

_ID = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{1,48}$")]


class ScenarioError(ValueError):
    """A scenario file is missing, not TOML, or does not match the format."""


class Carrier(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    outcomes: list[SimOutcome]
    ring_s: float = 0.05


class Expect(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    events_in_order: list[str] = msgspec.field(default_factory=list)
    """Event kinds (``domain.name``) that must appear in this order (others may interleave)."""
    absent_events: list[str] = msgspec.field(default_factory=list)
    agents: list[str] = msgspec.field(default_factory=list)
    """Agents that must have been entered, in this order."""
    consent: ConsentDecision | None = None
    recording: list[str] | None = None
    """The recording timeline's start/stop actions, exactly (``[]``: never started)."""
    outcome: CallOutcome | None = None
    transfer_states: list[str] = msgspec.field(default_factory=list)
    callback_requested: bool | None = None
    spoken: list[str] = msgspec.field(default_factory=list)
    """Fragments the agents must have said, in this order (case-insensitive)."""


class Scenario(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    name: str
    call_id: _ID
    turns: list[str]
    caller_number: str | None = None
    trunk: str | None = None
    language: str = "en"
    description: str = ""
    carrier: Carrier | None = None
    expect: Expect = msgspec.field(default_factory=Expect)

    def run_call_id(self) -> str:
        """A fresh call id per run: the ledger and the event stream keep every run."""
        return f"{self.call_id}-{uuid.uuid4().hex[:8]}"


def load(path: Path) -> Scenario:
    try:
        raw = tomllib.loads(path.read_text("utf-8"))
    except OSError as exc:
        raise ScenarioError(f"Cannot read scenario {path}: {exc.strerror}.") from None
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"Scenario {path} is not valid TOML: {exc}.") from None
    try:
        return msgspec.convert(raw, Scenario)
    except msgspec.ValidationError as exc:
        raise ScenarioError(f"Scenario {path} does not match the format: {exc}.") from None


def discover(directory: Path) -> list[Path]:
    """The scenario files of a directory, in name order."""
    return sorted(directory.glob("*.toml"))

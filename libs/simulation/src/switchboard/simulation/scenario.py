"""Scenario files: one scripted call (TOML) with what must have happened.

name = "consent granted, billing, manager, human transfer"
call_id = "scn-a"                  # a unique suffix is added per run
caller_number = "+14155550123"
trunk = "main"
language = "en"
turns = ["Yes, that's fine.", "I have a question about my bill.", ...]
# Audio mode (``--audio``) also takes turns with a moment, as tables:
#   { says = "Get me a manager.", after_agent_says = "refund", delay_s = 0.5 }
#   { says = "Mm-hmm.", after_agent_says = "your bill", backchannel = true }
#   { says = "Hello?", at_event = "transfer.dialing", delay_s = 0.3 }      # on hold
# (``after_agent_says = ""``: as soon as the agent is speaking). To cut or pause a reply,
# pick a moment with a few seconds of it left: the caller's speech pauses it after 0.5 s,
# and on a busy machine the session reacts a little later in audio time. In audio mode the
# ``[hold]`` lines are said into the microphone, and the expectations below marked "audio
# mode" apply.

[carrier]                          # the simulated sip-bridge's script for this call
outcomes = ["busy", "answer"]      # what each dial attempt does, in order
ring_s = 0.05

[[humans]]                         # who answers a warm transfer, in the order they answer
says = ["Hello?", "Sorry, I'm on another call."]   # each line is one turn to the briefing
[[humans]]
says = ["Hi, Sam here.", "What's their email?", "Sure, put them through."]
# hangs_up = true                  # hangs up after their lines, before deciding
# A human with no entry says "Hello?" then takes the call; on a ``voicemail`` attempt
# the far end plays a voicemail greeting instead.

[hold]                             # the caller while on hold
at = "escalation.decided"          # when they speak: the first event of this kind
says = ["Okay, thanks."]           # not heard: their input is off while on hold
hang_up_at = "transfer.ringing"    # they hang up when this event is seen

[expect]
events_in_order = ["call.started", "consent.recorded", "call.ended"]
absent_events = ["recording.started"]
agents = ["triage", "billing", "manager"]
consent = "granted"
recording = ["started", "stopped"]
outcome = "transferred"
transfer_states = ["dialing", "answered"]
transfer_failures = ["human_declined"]  # the reasons of transfer.failed, exactly
callback_requested = false
spoken = ["duty manager"]
human_spoken = ["Here's the caller"]   # said by the briefing agent to the humans, in order
caller_unheard = ["Okay, thanks"]      # caller lines said on hold, which nothing acted on
interrupted = ["Thanks for holding"]   # audio mode: replies the caller cut short
played_out = ["transfer you"]          # audio mode: talked over, played to the end anyway
resumed = ["your balance"]             # audio mode: paused by a sound, then carried on

Two checks need no expectation: a ``transfer.briefed`` comes only after its human heard
the briefing, and after the call the bridge holds no transfer and no open leg of it.
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


class Turn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """A caller turn with a moment (audio mode); text mode plays it as a plain turn."""

    says: str
    after_agent_says: str | None = None
    """Start while the agent says this (a fragment of its reply, case-insensitive), once
    the words have played, instead of after the agent has finished."""
    at_event: str | None = None
    """Start when an event of this kind is seen (``transfer.dialing``: on hold)."""
    delay_s: Annotated[float, msgspec.Meta(ge=0)] = 0.0
    """Audio seconds after that moment."""
    backchannel: bool = False
    """A sound that is not a turn ("mm-hmm"): the recogniser hears no words in it."""

    def __post_init__(self) -> None:
        if self.after_agent_says is not None and self.at_event is not None:
            raise ValueError("a turn starts after_agent_says or at_event, not both")

    @property
    def timed(self) -> bool:
        return self.after_agent_says is not None or self.at_event is not None


class Carrier(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    outcomes: list[SimOutcome]
    ring_s: float = 0.05


class Human(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """One person who answers a warm transfer, as scripted lines to the briefing agent."""

    says: list[str] = msgspec.field(default_factory=list)
    hangs_up: bool = False
    """Hangs up after the last line if they have not decided."""


class Hold(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """What the caller does while on hold."""

    at: str = "transfer.dialing"
    """The event kind on which they say ``says``."""
    says: list[str] = msgspec.field(default_factory=list)
    hang_up_at: str | None = None
    """The event kind on which they hang up."""


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
    transfer_failures: list[str] = msgspec.field(default_factory=list)
    """The reasons of the ``transfer.failed`` events, exactly and in order."""
    callback_requested: bool | None = None
    spoken: list[str] = msgspec.field(default_factory=list)
    """Fragments the agents must have said to the caller, in this order (case-insensitive)."""
    human_spoken: list[str] = msgspec.field(default_factory=list)
    """Fragments the briefing agent must have said to the humans, in this order."""
    caller_unheard: list[str] = msgspec.field(default_factory=list)
    """Fragments of caller lines said on hold that nothing acted on (audio mode: every
    caller line that never became a turn)."""
    interrupted: list[str] = msgspec.field(default_factory=list)
    """Audio mode: agent replies (a fragment of each) the caller cut short, in this order."""
    played_out: list[str] = msgspec.field(default_factory=list)
    """Audio mode: replies the caller talked over that still played to the end."""
    resumed: list[str] = msgspec.field(default_factory=list)
    """Audio mode: replies paused by the caller's sound that carried on to the end."""


class Scenario(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    name: str
    call_id: _ID
    turns: list[str | Turn]
    caller_number: str | None = None
    trunk: str | None = None
    language: str = "en"
    description: str = ""
    carrier: Carrier | None = None
    humans: list[Human] = msgspec.field(default_factory=list)
    hold: Hold | None = None
    expect: Expect = msgspec.field(default_factory=Expect)

    @property
    def lines(self) -> list[str]:
        """What the caller says in each turn (text mode plays timed turns as plain ones)."""
        return [t if isinstance(t, str) else t.says for t in self.turns]

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

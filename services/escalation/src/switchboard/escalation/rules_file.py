"""The rules file: its TOML format, validation, and the compiled ``Rules`` the router uses.

The file is decoded with ``tomllib`` and converted with ``msgspec.convert`` into strict
Structs (unknown keys are errors, so a misspelt key is caught rather than silently
ignored), then cross-checked (every queue named exists, hours parse, every language has a
line for every target). Any problem raises ``RulesError`` with one sentence naming the
file and the place in it. A shipped default is used when no file is configured.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated

import msgspec

from switchboard.contracts.escalation import Destination, EscalationReason, HandoffTarget
from switchboard.escalation.hours import BusinessHours, HoursError, compile_hours
from switchboard.escalation.queues import QueueState

DEFAULT_RULES = "default_rules.toml"

Name = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
"""Queue, intent and agent names: lower-case tokens, safe as NATS KV keys."""
Language = Annotated[str, msgspec.Meta(pattern=r"^[a-z]{2,3}(-[a-z0-9]{2,8})*$")]
SayText = Annotated[str, msgspec.Meta(min_length=1, max_length=512)]
NonNegative = Annotated[int, msgspec.Meta(ge=0)]


class RulesError(ValueError):
    """The rules file cannot be used; the message names the file and the problem."""


class _Strict(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """File sections reject unknown keys: a typo must not silently change routing."""


class RouterSection(_Strict, frozen=True):
    default_language: Language = "en"
    default_intent: Name = "general"
    ai_manager: bool = True
    manager_agent: Name = "manager"
    ai_attempts_limit: Annotated[int, msgspec.Meta(ge=1)] = 2
    on_call_queue: Name | None = None


class PrioritySection(_Strict, frozen=True):
    base: NonNegative = 10
    maximum: NonNegative = 100
    reasons: dict[EscalationReason, NonNegative] = {}


class VipTier(_Strict, frozen=True):
    priority_boost: NonNegative = 0
    straight_to_human: bool = False
    """Skip the AI manager and specialists for this tier."""


class IntentSection(_Strict, frozen=True):
    queue: Name
    specialist: Name | None = None
    """The AI specialist agent for this intent, if there is one."""
    aliases: list[Name] = []


class HoursSection(_Strict, frozen=True):
    mon: list[str] = []
    tue: list[str] = []
    wed: list[str] = []
    thu: list[str] = []
    fri: list[str] = []
    sat: list[str] = []
    sun: list[str] = []
    closed: list[dt.date] = []


class CapacitySection(_Strict, frozen=True):
    max_waiting: NonNegative
    """Callers already waiting at which the queue counts as full."""
    max_waiting_per_agent: Annotated[float, msgspec.Meta(gt=0)] | None = None
    """Tighter limit while few agents are available: full at ``agents × this`` waiting."""


class QueueSection(_Strict, frozen=True):
    label: SayText
    timezone: str
    hours: HoursSection
    capacity: CapacitySection
    destinations: Annotated[list[Destination], msgspec.Meta(min_length=1)]
    languages: list[Language] = []
    """Languages the queue's people speak; empty means any."""
    overflow: Name | None = None
    voicemail: Destination | None = None
    state: QueueState = QueueState()
    """Used when no workforce feed reports this queue."""
    say: dict[Language, SayText] = {}
    """Queue-specific line for ``human_queue`` decisions, by language."""


class SayLines(_Strict, frozen=True):
    ai_manager: SayText
    ai_specialist: SayText
    human_queue: SayText
    callback: SayText
    voicemail: SayText


class LanguageSection(_Strict, frozen=True):
    say: SayLines
    queue: Name | None = None


class RulesFile(_Strict, frozen=True):
    """The whole rules file."""

    queues: Annotated[dict[Name, QueueSection], msgspec.Meta(min_length=1)]
    languages: Annotated[dict[Language, LanguageSection], msgspec.Meta(min_length=1)]
    intents: dict[Name, IntentSection] = {}
    router: RouterSection = RouterSection()
    priority: PrioritySection = PrioritySection()
    vip: dict[Name, VipTier] = {}


@dataclass(frozen=True, slots=True)
class Queue:
    """One queue, compiled: hours resolved to a timezone, destinations in dial order."""

    name: str
    label: str
    hours: BusinessHours
    capacity: CapacitySection
    destinations: tuple[Destination, ...]
    languages: frozenset[str]
    overflow: str | None
    voicemail: Destination | None
    state: QueueState
    say: Mapping[str, str]

    def speaks(self, language: str) -> bool:
        return not self.languages or primary(language) in self.languages


@dataclass(frozen=True, slots=True)
class Rules:
    """Validated, compiled rules; immutable so a reload swaps them atomically."""

    version: str
    source: str
    router: RouterSection
    priority: PrioritySection
    vip: Mapping[str, VipTier]
    intents: Mapping[str, IntentSection]
    intent_names: Mapping[str, str]
    """Intent name or alias (lower case) to the canonical intent name."""
    queues: Mapping[str, Queue]
    languages: Mapping[str, LanguageSection]

    static_states: Mapping[str, QueueState]
    """Each queue's state as written in the file, for sites without a workforce feed."""

    def say(self, language: str, target: HandoffTarget) -> str:
        lines: SayLines = self.languages[language].say
        text: str = getattr(lines, target.value)
        return text


def primary(language: str) -> str:
    """The primary subtag of a language tag: ``es`` for ``es-MX``."""
    return language.split("-", 1)[0].lower()


def load_rules(path: str | Path | None = None) -> Rules:
    """Read, validate and compile a rules file; the shipped default when ``path`` is empty."""
    if path:
        source = str(path)
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise RulesError(f"Cannot read rules file {source}: {exc.strerror}.") from None
    else:
        source = f"(default) {DEFAULT_RULES}"
        data = resources.files(__package__).joinpath(DEFAULT_RULES).read_bytes()
    return parse_rules(data, source)


def parse_rules(data: bytes, source: str = "<rules>") -> Rules:
    """Validate and compile rules from TOML bytes; ``source`` names them in errors."""
    try:
        raw = tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise RulesError(f"Rules file {source} is not UTF-8 text.") from None
    except tomllib.TOMLDecodeError as exc:
        raise RulesError(f"Rules file {source} is not valid TOML: {exc}.") from None
    try:
        _check_entries(raw)
        spec = msgspec.convert(raw, RulesFile)
    except msgspec.ValidationError as exc:
        raise RulesError(f"Rules file {source} is invalid: {exc}.") from None
    version = hashlib.sha256(data).hexdigest()[:12]
    try:
        return _compile(spec, version, source)
    except (HoursError, _CrossCheckError) as exc:
        raise RulesError(f"Rules file {source} is invalid: {exc}") from None


class _CrossCheckError(ValueError):
    pass


_KEYED_SECTIONS: dict[str, tuple[object, type[msgspec.Struct]]] = {
    "queues": (Name, QueueSection),
    "languages": (Language, LanguageSection),
    "intents": (Name, IntentSection),
    "vip": (Name, VipTier),
}


def _check_entries(raw: dict[str, object]) -> None:
    """Convert each entry of the keyed sections on its own, so an error names the entry.

    msgspec reports a path through a dict as ``$.queues[...]``; an operator needs to know
    which queue.
    """
    for section, (key_type, entry_type) in _KEYED_SECTIONS.items():
        entries = raw.get(section)
        if not isinstance(entries, dict):
            continue  # the whole-file conversion reports the wrong type
        for key, value in entries.items():
            try:
                msgspec.convert(key, key_type)
            except msgspec.ValidationError:
                raise msgspec.ValidationError(
                    f"{section} key {key!r} must be a lower-case name (letters, digits, - and _)"
                ) from None
            try:
                msgspec.convert(value, entry_type)
            except msgspec.ValidationError as exc:
                where = f"`$.{section}.{key}"
                text = str(exc).replace("`$", where)
                raise msgspec.ValidationError(
                    text if where in text else f"{text} - at {where}`"
                ) from None


def _compile(spec: RulesFile, version: str, source: str) -> Rules:
    queues = {name: _compile_queue(name, q) for name, q in spec.queues.items()}
    _check_references(spec, queues)
    return Rules(
        version=version,
        source=source,
        router=spec.router,
        priority=spec.priority,
        vip=dict(spec.vip),
        intents=dict(spec.intents),
        intent_names=_intent_names(spec.intents),
        queues=queues,
        languages=dict(spec.languages),
        static_states={name: queue.state for name, queue in queues.items()},
    )


def _compile_queue(name: str, q: QueueSection) -> Queue:
    h = q.hours
    weekly = {"mon": h.mon, "tue": h.tue, "wed": h.wed, "thu": h.thu, "fri": h.fri}
    weekly |= {"sat": h.sat, "sun": h.sun}
    try:
        hours = compile_hours(q.timezone, weekly, h.closed)
    except HoursError as exc:
        raise HoursError(f"queue {name!r}: {exc}") from None
    return Queue(
        name=name,
        label=q.label,
        hours=hours,
        capacity=q.capacity,
        destinations=tuple(q.destinations),
        languages=frozenset(primary(lang) for lang in q.languages),
        overflow=q.overflow,
        voicemail=q.voicemail,
        state=q.state,
        say=dict(q.say),
    )


def _check_references(spec: RulesFile, queues: Mapping[str, Queue]) -> None:
    def need_queue(name: str | None, where: str) -> None:
        if name is not None and name not in queues:
            raise _CrossCheckError(f"{where} names queue {name!r}, which is not defined.")

    for intent, section in spec.intents.items():
        need_queue(section.queue, f"intents.{intent}.queue")
    for name, queue in spec.queues.items():
        need_queue(queue.overflow, f"queues.{name}.overflow")
        if queue.overflow == name:
            raise _CrossCheckError(f"queues.{name}.overflow names the queue itself.")
        for lang in queue.say:
            if lang not in spec.languages:
                raise _CrossCheckError(
                    f"queues.{name}.say has a line for {lang!r}, which is not under [languages]."
                )
    for lang, language in spec.languages.items():
        need_queue(language.queue, f"languages.{lang}.queue")
    need_queue(spec.router.on_call_queue, "router.on_call_queue")
    if spec.router.default_language not in spec.languages:
        raise _CrossCheckError(
            f"router.default_language {spec.router.default_language!r} has no [languages] entry."
        )
    if spec.router.default_intent not in spec.intents:
        raise _CrossCheckError(
            f"router.default_intent {spec.router.default_intent!r} has no [intents] entry."
        )
    if spec.priority.base > spec.priority.maximum:
        raise _CrossCheckError("priority.base is above priority.maximum.")
    _intent_names(spec.intents)


def _intent_names(intents: Mapping[str, IntentSection]) -> dict[str, str]:
    names: dict[str, str] = {}
    for intent, section in intents.items():
        for alias in (intent, *section.aliases):
            if names.get(alias, intent) != intent:
                raise _CrossCheckError(
                    f"intent alias {alias!r} is used by both {names[alias]!r} and {intent!r}."
                )
            names[alias] = intent
    return names

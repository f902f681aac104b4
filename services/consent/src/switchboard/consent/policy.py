"""The consent policy: which jurisdiction a call falls under, whether to ask or notify,
and what to say. Loaded from a TOML file a deployment edits; validated as a whole so a
bad edit is refused with a message naming what is wrong.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated

import msgspec

from switchboard.consent.jurisdiction import UNKNOWN, jurisdiction_of
from switchboard.contracts.base import Identifier, LanguageTag, ShortText
from switchboard.contracts.consent import (
    ConsentMode,
    ConsentPolicy,
    ConsentPolicyQuery,
    Jurisdiction,
)

_JURISDICTION = r"^(unknown|[A-Z]{2}(-([A-Z0-9]{1,3}|\*))?)$"
JurisdictionKey = Annotated[str, msgspec.Meta(pattern=_JURISDICTION)]
PinnedJurisdiction = Jurisdiction
# A notice's version goes out as "<version>:<language>", which the contract's
# NoticeVersion pattern must accept, or the ledger would refuse its own notices.
NoticeName = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", max_length=64)]


class PolicyError(ValueError):
    """A policy file that cannot be used; the message names the file and the problem."""


class NoticeSpec(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """One notice in every language it is offered in. Policy sections refuse unknown keys,
    so a typo is an error rather than a silent default."""

    version: NoticeName
    text: dict[LanguageTag, ShortText]


class RuleSpec(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    mode: ConsentMode
    notice: Identifier | None = None
    """The notice to read; defaults to the notice named like the mode (``ask``/``notify``)."""


class PolicySpec(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    default: RuleSpec
    notices: dict[Identifier, NoticeSpec]
    ai_disclosure: dict[LanguageTag, ShortText]
    default_language: LanguageTag = "en"
    jurisdictions: dict[JurisdictionKey, RuleSpec] = msgspec.field(default_factory=dict)
    trunks: dict[Identifier, PinnedJurisdiction] = msgspec.field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Policy:
    """A validated policy; ``decide`` answers one query."""

    spec: PolicySpec
    source: str

    def jurisdiction(self, query: ConsentPolicyQuery) -> str:
        if query.trunk is not None and query.trunk in self.spec.trunks:
            return self.spec.trunks[query.trunk]
        return jurisdiction_of(query.caller_number)

    def rule(self, jurisdiction: str) -> RuleSpec:
        rules = self.spec.jurisdictions
        if jurisdiction in rules:
            return rules[jurisdiction]
        country, _, subdivision = jurisdiction.partition("-")
        if subdivision and f"{country}-*" in rules:
            return rules[f"{country}-*"]
        return self.spec.default

    def decide(self, query: ConsentPolicyQuery) -> ConsentPolicy:
        jurisdiction = self.jurisdiction(query)
        rule = self.rule(jurisdiction)
        notice = self.spec.notices[rule.notice or rule.mode.value]
        language = pick_language(query.language, notice.text, self.spec.default_language)
        disclosure_language = pick_language(
            language, self.spec.ai_disclosure, self.spec.default_language
        )
        return ConsentPolicy(
            call_id=query.call_id,
            jurisdiction=jurisdiction,
            mode=rule.mode,
            notice_text=notice.text[language],
            # The version names the exact words played: the notice version and its language.
            notice_version=f"{notice.version}:{language}",
            ai_disclosure=self.spec.ai_disclosure[disclosure_language],
            language=language,
        )


def pick_language(wanted: str, available: dict[str, str], default: str) -> str:
    """The best available language: exact tag, then its primary subtag, then the default."""
    if wanted in available:
        return wanted
    primary = wanted.split("-", 1)[0]
    if primary in available:
        return primary
    return default


def parse_policy(data: bytes | str, source: str) -> Policy:
    """Parse and validate a policy document; raises ``PolicyError`` naming the problem."""
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    try:
        raw = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise PolicyError(f"Policy file {source} is not valid TOML: {exc}.") from None
    try:
        spec = msgspec.convert(raw, PolicySpec)
    except msgspec.ValidationError as exc:
        raise PolicyError(f"Policy file {source} is invalid: {exc}.") from None
    problems = _problems(spec)
    if problems:
        raise PolicyError(f"Policy file {source} is invalid: " + " ".join(problems))
    return Policy(spec=spec, source=source)


def _problems(spec: PolicySpec) -> list[str]:
    out: list[str] = []
    lang = spec.default_language
    if spec.default.mode is not ConsentMode.ASK:
        out.append("[default] mode must be 'ask': an unknown jurisdiction always asks.")
    unknown = spec.jurisdictions.get(UNKNOWN)
    if unknown is not None and unknown.mode is not ConsentMode.ASK:
        out.append("[jurisdictions.unknown] mode must be 'ask'.")
    rules = [("default", spec.default), *spec.jurisdictions.items()]
    for name, rule in rules:
        notice = rule.notice or rule.mode.value
        if notice not in spec.notices:
            out.append(f"Rule {name!r} needs notice {notice!r}, which is not defined.")
    for name, notice_spec in spec.notices.items():
        if lang not in notice_spec.text:
            out.append(f"Notice {name!r} has no text in the default language {lang!r}.")
    if lang not in spec.ai_disclosure:
        out.append(f"[ai_disclosure] has no text in the default language {lang!r}.")
    return out


def load_policy(path: Path | None) -> Policy:
    """Load a policy file, or the shipped default when ``path`` is None."""
    if path is None:
        shipped = resources.files("switchboard.consent").joinpath("data", "default_policy.toml")
        return parse_policy(shipped.read_bytes(), "(shipped default)")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PolicyError(f"Policy file {path} cannot be read: {exc.strerror}.") from None
    return parse_policy(data, str(path))

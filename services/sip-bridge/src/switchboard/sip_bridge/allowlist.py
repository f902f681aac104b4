"""The destination allow-list: which addresses the bridge will ever dial.

The bridge re-checks every destination itself, whatever the request says: requests come
from other services, and a router rule, a compromised worker or a prompt-injected model
must not be able to make it dial a premium or foreign number (toll fraud). Rules:

- an address must be a plain E.164 number or a plain SIP URI (checked again here, with
  full-string matches, not trusted from the decoder);
- an exact allow entry admits that address, even inside a blocked range: an operator
  who lists a full number has vetted it;
- otherwise numbers in a blocked prefix (premium, high-fraud ranges) and numbers outside
  the home country prefix (international) are refused, also when they hide in the user
  part of a SIP URI;
- then the address must match a number prefix (``+1415555*``) or a SIP host
  (``sip:*@pbx.example.com``). The list is the same whatever the carrier driver: a
  simulated carrier screens exactly as the real one would, and an empty list is a settings
  error rather than an open door;
- a destination naming a trunk must name a configured one.

Verdicts carry a rule description that never contains the address, so they can be logged.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from switchboard.contracts.escalation import Destination
from switchboard.runtime.settings import SettingsError

_E164 = re.compile(r"\+[1-9][0-9]{6,14}")
_SIP = re.compile(
    r"(?P<scheme>sips?):(?P<user>[A-Za-z0-9_.+-]{1,64})@(?P<host>[A-Za-z0-9.-]{1,190})"
    r"(?::(?P<port>[0-9]{1,5}))?",
    re.IGNORECASE,
)
_PREFIX = re.compile(r"\+[0-9]{1,15}")
_HOST = re.compile(r"[A-Za-z0-9.-]{1,190}")
_NUMERIC_USER = re.compile(r"\+?[0-9]+")
DIAL_STRING_DIGITS = 7
"""A SIP user part of this many digits or more can reach the phone network through the
host's gateway, so it is treated like a number; shorter ones are extensions."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether a destination may be dialled, and the rule that decided (no address in it)."""

    allowed: bool
    rule: str


@dataclass(frozen=True, slots=True)
class _Address:
    canonical: str
    number: str | None
    """The phone number this address dials, when it dials one."""
    host: str | None
    unclassified_dial_string: bool = False


def _parse(address: str) -> _Address | None:
    if _E164.fullmatch(address):
        return _Address(canonical=address, number=address, host=None)
    match = _SIP.fullmatch(address)
    if match is None:
        return None
    scheme = match["scheme"].lower()
    user = match["user"]
    host = match["host"].lower()
    port = f":{match['port']}" if match["port"] else ""
    canonical = f"{scheme}:{user}@{host}{port}"
    if _NUMERIC_USER.fullmatch(user):
        if user.startswith("+"):
            return _Address(canonical, number=user, host=host)
        if len(user) >= DIAL_STRING_DIGITS:
            return _Address(canonical, number=None, host=host, unclassified_dial_string=True)
    return _Address(canonical, number=None, host=host)


class DestinationAllowList:
    """Decides for each destination whether the bridge may dial it."""

    def __init__(
        self,
        *,
        exact: Iterable[str] = (),
        prefixes: Iterable[str] = (),
        sip_hosts: Iterable[str] = (),
        blocked_prefixes: Iterable[str] = (),
        home_prefix: str = "",
        trunks: Iterable[str] | None = None,
    ) -> None:
        self._exact = frozenset(exact)
        self._prefixes = tuple(prefixes)
        self._sip_hosts = frozenset(h.lower() for h in sip_hosts)
        self._blocked = tuple(blocked_prefixes)
        self._home = home_prefix
        self._trunks = None if trunks is None else frozenset(trunks)

    @classmethod
    def from_config(
        cls,
        allow: str,
        block: str,
        home_prefix: str,
        *,
        trunks: Iterable[str] | None,
    ) -> DestinationAllowList:
        """Parse the comma-separated settings; a malformed entry or an empty list stops
        the service."""
        if not _entries(allow):
            raise SettingsError(
                "SB_TRANSFER_ALLOW is empty: list the destinations the bridge may dial "
                "(the same list for every carrier driver)."
            )
        exact: list[str] = []
        prefixes: list[str] = []
        hosts: list[str] = []
        for position, entry in enumerate(_entries(allow), start=1):
            if entry.startswith("sip:*@") or entry.startswith("sips:*@"):
                host = entry.split("@", 1)[1]
                if not _HOST.fullmatch(host):
                    raise SettingsError(f"SB_TRANSFER_ALLOW entry {position} is not a SIP host.")
                hosts.append(host)
            elif entry.endswith("*"):
                if not _PREFIX.fullmatch(entry[:-1]):
                    raise SettingsError(
                        f"SB_TRANSFER_ALLOW entry {position} is not a '+digits*' prefix."
                    )
                prefixes.append(entry[:-1])
            else:
                parsed = _parse(entry)
                if parsed is None:
                    raise SettingsError(
                        f"SB_TRANSFER_ALLOW entry {position} is not an E.164 number or SIP URI."
                    )
                exact.append(parsed.canonical)
        blocked = _entries(block)
        for position, prefix in enumerate(blocked, start=1):
            if not _PREFIX.fullmatch(prefix):
                raise SettingsError(
                    f"SB_TRANSFER_BLOCK entry {position} is not a '+digits' prefix."
                )
        home = home_prefix.strip()
        if home and not _PREFIX.fullmatch(home):
            raise SettingsError("SB_TRANSFER_HOME_PREFIX must look like '+1'.")
        return cls(
            exact=exact,
            prefixes=prefixes,
            sip_hosts=hosts,
            blocked_prefixes=blocked,
            home_prefix=home,
            trunks=trunks,
        )

    def check(self, destination: Destination) -> Verdict:
        if destination.trunk_id is not None and (
            self._trunks is not None and destination.trunk_id not in self._trunks
        ):
            return Verdict(False, "the destination names a trunk that is not configured")
        parsed = _parse(destination.address)
        if parsed is None:
            return Verdict(False, "the address is not a plain E.164 number or SIP URI")
        if parsed.canonical in self._exact:
            return Verdict(True, "exact allow-list entry")
        if parsed.unclassified_dial_string:
            return Verdict(False, "a long digit string at a SIP host must be allowed exactly")
        if parsed.number is not None:
            refusal = self._number_refusal(parsed.number)
            if refusal:
                return Verdict(False, refusal)
        if parsed.host is None and any(parsed.canonical.startswith(p) for p in self._prefixes):
            return Verdict(True, "allowed number prefix")
        if parsed.host is not None and parsed.host in self._sip_hosts:
            return Verdict(True, "allowed SIP host")
        return Verdict(False, "the address is not on the allow-list")

    def _number_refusal(self, number: str) -> str:
        if any(number.startswith(p) for p in self._blocked):
            return "the number is in a blocked premium or high-fraud range"
        if self._home and not number.startswith(self._home):
            return "the number is international"
        return ""


def _entries(raw: str) -> list[str]:
    return [e.strip() for e in raw.split(",") if e.strip()]

"""Settings of the sip-bridge, read from ``SB_*`` environment variables.

List-valued settings are comma-separated strings (one env var each), parsed where they
are used (``allowlist``, ``assembly``). LiveKit credentials may also come from the SDK's
own ``LIVEKIT_URL``, ``LIVEKIT_API_KEY`` and ``LIVEKIT_API_SECRET`` so one secret can
serve every process.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Mapping
from dataclasses import dataclass

from switchboard.contracts.simulation import SimOutcome
from switchboard.runtime.settings import ServiceSettings, SettingsError

DEFAULT_BLOCKED_PREFIXES = ",".join(
    (
        # NANP premium-rate services.
        "+1900",
        "+1976",
        # Caribbean NANP area codes: dialled like domestic numbers but billed as
        # international, the classic "one-ring" revenue-share fraud targets.
        "+1242,+1246,+1264,+1268,+1284,+1345,+1441,+1473,+1649,+1658,+1664,+1721",
        "+1758,+1767,+1784,+1809,+1829,+1849,+1868,+1869,+1876",
        # Global premium and satellite ranges favoured by international revenue-share fraud.
        "+808,+870,+878,+881,+882,+883,+979",
        # UK premium (09), service (087) and "personal" (070) numbers.
        "+449,+4487,+4470",
    )
)


class DriverChoice(enum.StrEnum):
    """Which carrier driver places calls. ``auto``: LiveKit when credentials and an outbound
    trunk are set, else the simulated carrier."""

    AUTO = "auto"
    SIMULATED = "simulated"
    LIVEKIT = "livekit"


class SipBridgeSettings(ServiceSettings, kw_only=True, frozen=True):
    """Everything the sip-bridge reads from its environment."""

    carrier_driver: DriverChoice = DriverChoice.AUTO
    transfer_allow: str = ""
    """Allowed destinations, comma-separated: exact addresses (``+14155550100``,
    ``sip:desk@pbx.example.com``), number prefixes ending in ``*`` (``+1415555*``) and
    SIP hosts (``sip:*@pbx.example.com``). Required, and the same for every carrier driver:
    the simulated carrier screens exactly as the real one."""
    transfer_block: str = DEFAULT_BLOCKED_PREFIXES
    """Blocked number prefixes (premium, high-fraud ranges). Only exact allow entries
    override them."""
    transfer_home_prefix: str = "+1"
    """Numbers outside this country prefix are international and blocked unless allowed
    exactly. Empty disables the international rule."""
    transfer_cps: float = 1.0
    """Sustained dial attempts per second (Twilio trunks default to 1)."""
    transfer_burst: int = 5
    """Dial attempts allowed back to back before the per-second rate applies."""
    transfer_max_concurrent: int = 20
    """Transfers dialling, briefing or connecting at once; more wait in line."""
    transfer_max_queued: int = 200
    """Transfers that may wait in line for a dial slot; past that a newcomer is refused
    with ``rate_limited`` (a flood, not a busy moment)."""
    transfer_queue_max_wait_s: float = 120.0
    """Longest a transfer waits in line for a dial slot before failing with
    ``queue_timeout`` (the caller is then offered a callback)."""
    transfer_max_ring_s: float = 30.0
    """Ceiling on a request's ``ring_timeout_s`` (the request carries its own default)."""
    transfer_briefing_timeout_s: float = 120.0
    """Longest an answered human may take to hear the briefing and decide; past it the
    attempt fails as ``human_declined`` and the next destination is dialled."""
    transfer_step_timeout_s: float = 30.0
    """Longest the bridge waits for a connect step before failing it."""
    transfer_orphan_check_s: float = 2.0
    """How often (and at start) the bridge looks for transfers whose bridge instance
    stopped (a crash) and ends them: hangs their leg up, publishes a final
    ``transfer.failed`` (``bridge_lost``)."""
    transfer_journal_wait_s: float = 5.0
    """Longest a dial waits for its transfer's journal record to be written (a NATS
    restart); past it the transfer fails without dialling, since a leg without a record
    is one a crash would leave ringing with nobody to end it."""
    transfer_drain_s: float = 20.0
    """On SIGTERM, how long in-flight transfers may finish before they are failed."""
    sim_outcome: SimOutcome = SimOutcome.ANSWER
    """Simulated carrier: what an attempt does when the call has no script for it."""
    sim_ring_s: float = 0.05
    """Simulated carrier: ring time when the call's script does not set one."""
    livekit_url: str = ""
    livekit_api_key: str = ""
    livekit_api_secret: str = ""
    livekit_sip_trunk_id: str = ""
    """Outbound SIP trunk used when a destination names none."""
    livekit_extra_trunks: str = ""
    """Other trunk ids a destination may name, comma-separated; any other is refused."""
    livekit_status_poll_s: float = 0.5
    """How often the LiveKit driver reads a dialled participant's ``sip.callStatus`` and
    checks that the parties of a briefing or a connected call are still there."""


@dataclass(frozen=True, slots=True)
class LiveKitCredentials:
    """Where and how the LiveKit driver authenticates. Never logged."""

    url: str
    api_key: str
    api_secret: str

    def __repr__(self) -> str:
        return f"LiveKitCredentials(url={self.url!r}, api_key={self.api_key!r}, api_secret=***)"


def livekit_credentials(
    settings: SipBridgeSettings, environ: Mapping[str, str] | None = None
) -> LiveKitCredentials | None:
    """Credentials from ``SB_LIVEKIT_*``, else ``LIVEKIT_*``; ``None`` when incomplete."""
    env = os.environ if environ is None else environ
    url = settings.livekit_url or env.get("LIVEKIT_URL", "")
    key = settings.livekit_api_key or env.get("LIVEKIT_API_KEY", "")
    secret = settings.livekit_api_secret or env.get("LIVEKIT_API_SECRET", "")
    if url and key and secret:
        return LiveKitCredentials(url, key, secret)
    return None


def choose_driver(
    settings: SipBridgeSettings, environ: Mapping[str, str] | None = None
) -> DriverChoice:
    """Resolve ``auto`` and check that the chosen driver can run with these settings."""
    creds = livekit_credentials(settings, environ)
    # Settings built in code (not by ``load``) may carry the plain string.
    choice = DriverChoice(settings.carrier_driver)
    if choice is DriverChoice.AUTO:
        # LIVEKIT_* alone may be there for the voice worker; dialling also needs a trunk.
        ready = creds is not None and bool(settings.livekit_sip_trunk_id)
        choice = DriverChoice.LIVEKIT if ready else DriverChoice.SIMULATED
    if choice is DriverChoice.LIVEKIT:
        if creds is None:
            raise SettingsError(
                "SB_CARRIER_DRIVER=livekit needs SB_LIVEKIT_URL, SB_LIVEKIT_API_KEY and "
                "SB_LIVEKIT_API_SECRET (or LIVEKIT_URL, LIVEKIT_API_KEY, LIVEKIT_API_SECRET)."
            )
        if not settings.livekit_sip_trunk_id:
            raise SettingsError("Dialling through LiveKit needs SB_LIVEKIT_SIP_TRUNK_ID.")
        if not settings.transfer_allow.strip():
            # Real calls cost real money: never dial through a carrier with an open allow-list.
            raise SettingsError(
                "Dialling through LiveKit needs an allow-list in SB_TRANSFER_ALLOW."
            )
    return choice

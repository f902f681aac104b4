"""Assembles the bridge from its settings: the carrier driver, admission control and the desk.

Kept apart from the NATS wiring so tests (and the LiveKit driver tests) assemble the
same objects the service runs with.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from switchboard.sip_bridge.admission import AdmissionControl
from switchboard.sip_bridge.allowlist import DestinationAllowList
from switchboard.sip_bridge.desk import DeskTimings, TransferDesk
from switchboard.sip_bridge.drivers.base import CarrierDriver
from switchboard.sip_bridge.drivers.livekit import LiveKitCarrier
from switchboard.sip_bridge.drivers.simulated import CarrierScripts, SimulatedCarrier
from switchboard.sip_bridge.journal import Journal
from switchboard.sip_bridge.limits import ConcurrencyCap, TokenBucket
from switchboard.sip_bridge.outbox import EventSink
from switchboard.sip_bridge.settings import (
    DriverChoice,
    SipBridgeSettings,
    choose_driver,
    livekit_credentials,
)
from switchboard.sip_bridge.slots import DialSlots


@dataclass(frozen=True, slots=True)
class Bridge:
    """Everything the service runs; ``scripts`` only with the simulated carrier."""

    desk: TransferDesk
    driver: CarrierDriver
    admission: AdmissionControl
    scripts: CarrierScripts | None


def build_admission(settings: SipBridgeSettings, choice: DriverChoice) -> AdmissionControl:
    trunks = [t for t in (settings.livekit_sip_trunk_id,) if t]
    trunks += [t.strip() for t in settings.livekit_extra_trunks.split(",") if t.strip()]
    allow_list = DestinationAllowList.from_config(
        settings.transfer_allow,
        settings.transfer_block,
        settings.transfer_home_prefix,
        # A simulated carrier has no trunks to protect unless some are configured.
        trunks=trunks if trunks or choice is DriverChoice.LIVEKIT else None,
    )
    slots = DialSlots(
        ConcurrencyCap(settings.transfer_max_concurrent),
        TokenBucket(settings.transfer_cps, settings.transfer_burst),
        settings.transfer_max_queued,
    )
    return AdmissionControl(allow_list, slots)


def build_bridge(
    settings: SipBridgeSettings,
    sink: EventSink,
    environ: Mapping[str, str] | None = None,
    *,
    journal: Journal | None = None,
    owner: str = "",
) -> Bridge:
    """Choose the driver (``SettingsError`` if the settings cannot run it) and assemble."""
    choice = choose_driver(settings, environ)
    scripts: CarrierScripts | None = None
    driver: CarrierDriver
    if choice is DriverChoice.LIVEKIT:
        credentials = livekit_credentials(settings, environ)
        assert credentials is not None, "choose_driver checked the credentials"
        driver = LiveKitCarrier(
            credentials,
            trunk_id=settings.livekit_sip_trunk_id,
            status_poll_s=settings.livekit_status_poll_s,
        )
    else:
        scripts = CarrierScripts(settings.sim_outcome, settings.sim_ring_s)
        driver = SimulatedCarrier(scripts)
    admission = build_admission(settings, choice)
    timings = DeskTimings(
        max_ring_s=settings.transfer_max_ring_s,
        step_timeout_s=settings.transfer_step_timeout_s,
        briefing_timeout_s=settings.transfer_briefing_timeout_s,
        queue_max_wait_s=settings.transfer_queue_max_wait_s,
        journal_dial_wait_s=settings.transfer_journal_wait_s,
    )
    desk = TransferDesk(driver, admission, sink, timings, journal=journal, owner=owner)
    return Bridge(desk, driver, admission, scripts)

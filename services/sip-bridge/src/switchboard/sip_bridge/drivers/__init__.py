"""Carrier drivers: how the bridge actually places a call (simulated or LiveKit SIP)."""

from switchboard.sip_bridge.drivers.base import (
    Answered,
    CarrierDriver,
    DialFailed,
    DialPlan,
    OnRinging,
    consult_room_name,
)

__all__ = [
    "Answered",
    "CarrierDriver",
    "DialFailed",
    "DialPlan",
    "OnRinging",
    "consult_room_name",
]

"""``python -m switchboard.sip_bridge``: run the sip-bridge until SIGTERM."""

from __future__ import annotations

import asyncio

from switchboard.contracts.subjects import Owner
from switchboard.runtime.service import run_service
from switchboard.runtime.settings import load
from switchboard.sip_bridge import __version__
from switchboard.sip_bridge.app import setup
from switchboard.sip_bridge.settings import SipBridgeSettings


def main() -> None:
    asyncio.run(
        run_service(
            Owner.SIP_BRIDGE.value,
            __version__,
            load(SipBridgeSettings),
            setup,
            description="Human transfers over SIP with allow-lists, rate limits and failover.",
        )
    )


if __name__ == "__main__":
    main()

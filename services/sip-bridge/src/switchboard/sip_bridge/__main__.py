"""``python -m switchboard.sip_bridge``: run the sip-bridge until SIGTERM."""

from __future__ import annotations

import asyncio
import logging

from switchboard.contracts.subjects import Owner
from switchboard.runtime.logs import configure_logging
from switchboard.runtime.service import run_service
from switchboard.runtime.settings import SettingsError, load
from switchboard.sip_bridge import __version__
from switchboard.sip_bridge.app import setup
from switchboard.sip_bridge.settings import SipBridgeSettings, choose_driver

log = logging.getLogger("switchboard.sip_bridge")

EXIT_CONFIG = 2


def main() -> int:
    configure_logging(Owner.SIP_BRIDGE.value)
    try:
        settings = load(SipBridgeSettings)
        # Check the carrier driver before connecting: a bridge that cannot dial must not serve.
        choose_driver(settings)
    except SettingsError as exc:
        log.critical("Refusing to start: the configuration is invalid.", extra={"error": str(exc)})
        return EXIT_CONFIG
    asyncio.run(
        run_service(
            Owner.SIP_BRIDGE.value,
            __version__,
            settings,
            setup,
            description="Human transfers over SIP with allow-lists, rate limits and failover.",
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""``python -m switchboard.escalation``: run the escalation router until SIGTERM."""

from __future__ import annotations

import asyncio
import logging

from switchboard.contracts.subjects import Owner
from switchboard.escalation import __version__
from switchboard.escalation.app import build_setup
from switchboard.escalation.rules_file import RulesError, load_rules
from switchboard.escalation.settings import EscalationSettings
from switchboard.runtime.logs import configure_logging
from switchboard.runtime.service import run_service
from switchboard.runtime.settings import SettingsError, load

log = logging.getLogger("switchboard.escalation")

EXIT_CONFIG = 2


def main() -> int:
    configure_logging(Owner.ESCALATION.value)
    try:
        settings = load(EscalationSettings)
        # Validate the rules before connecting: a router with bad rules must not serve.
        rules = load_rules(settings.rules_file or None)
    except (SettingsError, RulesError) as exc:
        log.critical("Refusing to start: the configuration is invalid.", extra={"error": str(exc)})
        return EXIT_CONFIG
    asyncio.run(
        run_service(
            Owner.ESCALATION.value,
            __version__,
            settings,
            build_setup(rules),
            description="Escalation router: explained handoff decisions from rules.",
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

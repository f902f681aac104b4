"""``python -m switchboard.demo_crm``: run the demo CRM until SIGTERM, then print (and
write, with ``SB_CRM_TIMELINE_FILE``) every call's timeline."""

from __future__ import annotations

import asyncio
import logging

from switchboard.contracts.subjects import Owner
from switchboard.demo_crm import __version__
from switchboard.demo_crm.app import DemoCrm, build_setup
from switchboard.demo_crm.book import Book, BookError, load_records
from switchboard.demo_crm.settings import DemoCrmSettings
from switchboard.runtime.logs import configure_logging
from switchboard.runtime.service import run_service
from switchboard.runtime.settings import SettingsError, load

log = logging.getLogger("switchboard.demo_crm")

EXIT_CONFIG = 2


def main() -> int:
    configure_logging(Owner.CRM.value)
    try:
        settings = load(DemoCrmSettings)
        records = load_records(settings.crm_data_file or None)
    except (SettingsError, BookError) as exc:
        log.critical("Refusing to start: the configuration is invalid.", extra={"error": str(exc)})
        return EXIT_CONFIG
    crm = DemoCrm(Book(records))
    asyncio.run(
        run_service(
            Owner.CRM.value,
            __version__,
            settings,
            build_setup(crm, settings),
            description="Demo CRM: accounts, invoices and orders from a data file.",
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

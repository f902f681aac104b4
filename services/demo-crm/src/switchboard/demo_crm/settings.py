"""Settings of the demo CRM, read from ``SB_*`` environment variables."""

from __future__ import annotations

from switchboard.runtime.settings import ServiceSettings


class DemoCrmSettings(ServiceSettings, kw_only=True, frozen=True):
    """Where the demo CRM's records come from and where it writes the calls' timelines."""

    crm_data_file: str = ""
    """The records (TOML: accounts, invoices, products, support articles); empty for the
    packaged demo data."""
    crm_timeline_file: str = ""
    """Where every call's timeline is written at shutdown (empty: standard output only)."""

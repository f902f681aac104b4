"""Settings come from SB_* variables and fail with the variable's name."""

from __future__ import annotations

import pytest

from switchboard.runtime.settings import ServiceSettings, SettingsError, load, variables


class LedgerSettings(ServiceSettings, frozen=True, kw_only=True):
    ledger_db: str = "var/ledger.db"
    batch_size: int = 64


def test_unset_variables_keep_defaults() -> None:
    settings = load(LedgerSettings, {})
    assert settings.nats_url == "nats://127.0.0.1:4222"
    assert settings.batch_size == 64


def test_variables_are_converted_to_field_types() -> None:
    settings = load(
        LedgerSettings,
        {"SB_BATCH_SIZE": "8", "SB_NATS_URL": "nats://a:1, nats://b:2", "OTHER": "x"},
    )
    assert settings.batch_size == 8
    assert settings.servers == ["nats://a:1", "nats://b:2"]


def test_a_bad_value_names_the_variable() -> None:
    with pytest.raises(SettingsError, match="SB_BATCH_SIZE"):
        load(LedgerSettings, {"SB_BATCH_SIZE": "many"})


def test_variables_lists_every_setting_for_the_docs() -> None:
    names = dict(variables(LedgerSettings))
    assert names["SB_LEDGER_DB"] == "var/ledger.db"
    assert "SB_NATS_URL" in names

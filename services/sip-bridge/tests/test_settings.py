"""Settings from the environment and the choice of carrier driver."""

from __future__ import annotations

import pytest

from switchboard.contracts.simulation import SimOutcome
from switchboard.runtime.settings import SettingsError, load
from switchboard.sip_bridge.settings import (
    DriverChoice,
    SipBridgeSettings,
    choose_driver,
    livekit_credentials,
)

LIVEKIT_ENV = {
    "LIVEKIT_URL": "http://127.0.0.1:7880",
    "LIVEKIT_API_KEY": "key",
    "LIVEKIT_API_SECRET": "s3cr3t-value",
}
READY = {"SB_LIVEKIT_SIP_TRUNK_ID": "ST_main", "SB_TRANSFER_ALLOW": "+1415555*"}


def test_sb_variables_are_converted_to_typed_settings() -> None:
    settings = load(
        SipBridgeSettings,
        {
            "SB_TRANSFER_CPS": "2.5",
            "SB_TRANSFER_MAX_CONCURRENT": "7",
            "SB_CARRIER_DRIVER": "simulated",
            "SB_SIM_OUTCOME": "busy",
        },
    )
    assert settings.transfer_cps == 2.5
    assert settings.transfer_max_concurrent == 7
    assert settings.carrier_driver is DriverChoice.SIMULATED
    assert settings.sim_outcome is SimOutcome.BUSY


def test_a_bad_value_names_the_variable_to_fix() -> None:
    with pytest.raises(SettingsError, match="SB_SIM_OUTCOME"):
        load(SipBridgeSettings, {"SB_SIM_OUTCOME": "explode"})


def test_without_credentials_auto_means_the_simulated_carrier() -> None:
    assert choose_driver(load(SipBridgeSettings, {}), environ={}) is DriverChoice.SIMULATED


def test_livekit_sdk_variables_switch_auto_to_the_real_driver() -> None:
    settings = load(SipBridgeSettings, READY)
    assert choose_driver(settings, environ=LIVEKIT_ENV) is DriverChoice.LIVEKIT


def test_sb_livekit_variables_take_precedence_over_the_sdk_ones() -> None:
    settings = load(SipBridgeSettings, {**READY, "SB_LIVEKIT_URL": "http://127.0.0.1:9999"})
    credentials = livekit_credentials(settings, environ=LIVEKIT_ENV)
    assert credentials is not None
    assert credentials.url == "http://127.0.0.1:9999"
    assert credentials.api_key == "key"
    assert "s3cr3t-value" not in repr(credentials)


def test_credentials_without_a_trunk_keep_auto_on_the_simulated_carrier() -> None:
    # LIVEKIT_* may be set for the voice worker alone; the bridge cannot dial without a trunk.
    settings = load(SipBridgeSettings, {"SB_TRANSFER_ALLOW": "+1415555*"})
    assert choose_driver(settings, environ=LIVEKIT_ENV) is DriverChoice.SIMULATED


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"SB_CARRIER_DRIVER": "livekit", **READY}, "SB_LIVEKIT_URL"),
        ({"SB_CARRIER_DRIVER": "livekit", "SB_TRANSFER_ALLOW": "+1*"}, "SB_LIVEKIT_SIP_TRUNK_ID"),
        ({"SB_LIVEKIT_SIP_TRUNK_ID": "ST_main"}, "SB_TRANSFER_ALLOW"),
    ],
)
def test_the_real_driver_refuses_to_start_without_what_it_needs(
    env: dict[str, str], fragment: str
) -> None:
    environ = {} if env == {"SB_CARRIER_DRIVER": "livekit", **READY} else LIVEKIT_ENV
    with pytest.raises(SettingsError, match=fragment):
        choose_driver(load(SipBridgeSettings, env), environ=environ)


def test_forcing_the_simulated_carrier_ignores_credentials() -> None:
    settings = load(SipBridgeSettings, {"SB_CARRIER_DRIVER": "simulated"})
    assert choose_driver(settings, environ=LIVEKIT_ENV) is DriverChoice.SIMULATED

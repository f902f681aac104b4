"""The READMEs document every setting and every subject the code has, and their examples work."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from switchboard.consent.settings import ConsentSettings
from switchboard.contracts.envelope import EVENTS
from switchboard.contracts.escalation import Destination
from switchboard.contracts.subjects import REQUESTS
from switchboard.demo_crm.settings import DemoCrmSettings
from switchboard.escalation.rules_file import parse_rules
from switchboard.escalation.settings import EscalationSettings
from switchboard.runtime.settings import ServiceSettings, variables
from switchboard.simulation.settings import SimulationSettings
from switchboard.sip_bridge.allowlist import DestinationAllowList
from switchboard.sip_bridge.settings import SipBridgeSettings
from switchboard.voice.settings import VoiceSettings
from switchboard.webhook_relay.endpoints import load_endpoints
from switchboard.webhook_relay.settings import RelaySettings
from switchboard.webhook_relay.signing import new_secret

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


@pytest.mark.parametrize(
    "settings",
    [
        ServiceSettings,
        ConsentSettings,
        EscalationSettings,
        SipBridgeSettings,
        VoiceSettings,
        SimulationSettings,
        DemoCrmSettings,
        RelaySettings,
    ],
)
def test_every_environment_variable_is_documented(settings: type[ServiceSettings]) -> None:
    missing = [name for name, _ in variables(settings) if f"`{name}`" not in README]
    assert not missing, f"README.md does not document {missing}"


def test_every_subject_and_event_is_documented() -> None:
    for req in REQUESTS:
        assert f"`{req.subject}`" in README
    for spec in EVENTS:
        assert f"`{spec.domain}.{spec.name}`" in README


def test_the_two_commands_are_documented() -> None:
    assert "make demo" in README
    assert "make test" in README


SERVICE_READMES: dict[str, type[ServiceSettings]] = {
    "services/consent/README.md": ConsentSettings,
    "services/escalation/README.md": EscalationSettings,
    "services/sip-bridge/README.md": SipBridgeSettings,
    "services/demo-crm/README.md": DemoCrmSettings,
    "services/webhook-relay/README.md": RelaySettings,
}
ROOT = Path(__file__).resolve().parents[1]


def code_blocks(text: str, language: str = "") -> list[str]:
    """The fenced code blocks of a Markdown text opened with ```<language>."""
    return re.findall(rf"^```{language}\n(.*?)^```$", text, flags=re.MULTILINE | re.DOTALL)


@pytest.mark.parametrize("path", sorted(SERVICE_READMES))
def test_each_service_readme_documents_its_own_settings(path: str) -> None:
    text = (ROOT / path).read_text()
    shared = {name for name, _ in variables(ServiceSettings)}
    own = [name for name, _ in variables(SERVICE_READMES[path]) if name not in shared]
    assert own
    missing = [name for name in own if f"`{name}`" not in text]
    assert not missing, f"{path} does not document {missing}"


def test_the_rules_file_example_in_the_escalation_readme_is_a_valid_rules_file() -> None:
    text = (ROOT / "services/escalation/README.md").read_text()
    (example,) = code_blocks(text, "toml")
    rules = parse_rules(example.encode(), "README example")
    assert set(rules.queues) == {"billing", "general"}
    assert rules.queues["billing"].overflow == "general"


def test_the_endpoints_file_example_in_the_relay_readme_is_a_valid_endpoints_file(
    tmp_path: Path,
) -> None:
    text = (ROOT / "services/webhook-relay/README.md").read_text()
    (example,) = code_blocks(text, "toml")
    secret = tmp_path / "secret"
    secret.write_text(new_secret())
    path = tmp_path / "endpoints.toml"
    path.write_text(example.replace("/etc/switchboard/webhook-secrets/crm", str(secret)))
    [endpoint] = load_endpoints(str(path), 60.0)
    assert endpoint.name == "crm"
    assert endpoint.subjects == ("sb.evt.call.*.*", "sb.evt.case.*.*")
    assert endpoint.give_up_after_s == 3600


def test_the_allow_list_example_in_the_sip_bridge_readme_decides_as_it_says() -> None:
    text = (ROOT / "services/sip-bridge/README.md").read_text()
    (example,) = [b for b in code_blocks(text) if "SB_TRANSFER_ALLOW=" in b]
    env = dict(line.split("=", 1) for line in example.strip().splitlines())
    allow_list = DestinationAllowList.from_config(
        env["SB_TRANSFER_ALLOW"],
        env["SB_TRANSFER_BLOCK"],
        env["SB_TRANSFER_HOME_PREFIX"],
        trunks=None,
    )

    def allowed(address: str) -> bool:
        return allow_list.check(Destination(id="d", address=address)).allowed

    for address in ("+15550100201", "sip:billing@pbx.example.com", "+442071234567"):
        assert allowed(address), address
    for address in ("+442079999999", "+19005550100", "sip:+19005550100@pbx.example.com"):
        assert not allowed(address), address
    assert not allowed("sip:15550100201@pbx.example.com")  # long digit strings: exact only

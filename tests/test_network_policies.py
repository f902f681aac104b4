"""The namespace is fenced: nothing comes in, and each pod reaches only what it needs."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.test_deploy import render
from tools.deploycheck import examples, manifests

Rule = tuple[str, str, int]
"""(destination, protocol, port); destination is a namespace name or ``internet``."""
METADATA = "169.254.0.0/16"


def _selects(policy: dict[str, Any], labels: dict[str, str]) -> bool:
    wanted = policy["spec"]["podSelector"].get("matchLabels", {})
    return all(labels.get(k) == v for k, v in wanted.items())


def _destination(peer: dict[str, Any]) -> str:
    if "ipBlock" in peer:
        block = peer["ipBlock"]
        assert block["cidr"] == "0.0.0.0/0"
        assert METADATA in block["except"], "the cloud metadata address must stay closed"
        assert "10.0.0.0/8" in block["except"], "the internet rule must not open the cluster"
        return "internet"
    name: str = peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
    return name


def egress(docs: list[dict[str, Any]], labels: dict[str, str]) -> set[Rule]:
    rules: set[Rule] = set()
    for policy in manifests.of_kind(docs, "NetworkPolicy"):
        if not _selects(policy, labels):
            continue
        for rule in policy["spec"].get("egress", []):
            for peer in rule["to"]:
                for port in rule["ports"]:
                    rules.add((_destination(peer), port["protocol"], port["port"]))
    return rules


@pytest.fixture(scope="module")
def docs() -> list[dict[str, Any]]:
    return render("production")


def test_everything_is_denied_first_and_only_prometheus_may_connect_in(
    docs: list[dict[str, Any]],
) -> None:
    policies = manifests.by_name(docs, "NetworkPolicy")
    deny = policies["default-deny"]["spec"]
    assert deny["podSelector"] == {}
    assert set(deny["policyTypes"]) == {"Ingress", "Egress"}
    ingress = {n: p["spec"] for n, p in policies.items() if p["spec"].get("ingress")}
    assert set(ingress) == {"voice-worker-metrics"}
    spec = ingress["voice-worker-metrics"]
    assert spec["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "voice-worker"}
    (rule,) = spec["ingress"]
    assert [_destination(peer) for peer in rule["from"]] == ["monitoring"]
    voice = manifests.by_name(docs, "Deployment")["voice-worker"]
    (container,) = manifests.pod_spec(voice)["containers"]
    metrics = next(p["containerPort"] for p in container["ports"] if p["name"] == "metrics")
    assert [p["port"] for p in rule["ports"]] == [metrics]


def test_each_pod_reaches_only_what_it_needs(docs: list[dict[str, Any]]) -> None:
    common = manifests.by_name(docs, "ConfigMap")["switchboard-common"]["data"]
    nats_port = urlsplit(common["SB_NATS_URL"]).port
    collector_port = urlsplit(common["OTEL_EXPORTER_OTLP_ENDPOINT"]).port
    dsn = next(s for s in examples.load() if s["metadata"]["name"] == "consent-ledger-db")
    postgres_port = urlsplit(dsn["stringData"]["dsn"]).port
    everyone = {
        ("kube-system", "UDP", 53),
        ("kube-system", "TCP", 53),
        ("nats", "TCP", nats_port),
        ("observability", "TCP", collector_port),
    }
    reach = {
        name: egress(docs, d["spec"]["template"]["metadata"]["labels"])
        for name, d in manifests.by_name(docs, "Deployment").items()
    }
    assert reach["escalation-router"] == everyone
    assert reach["consent-ledger"] == everyone | {("postgres", "TCP", postgres_port)}
    assert reach["sip-bridge"] == everyone | {("internet", "TCP", 443)}
    voice_extra = reach["voice-worker"] - everyone
    assert ("internet", "TCP", 443) in voice_extra  # LiveKit API, providers
    assert ("internet", "UDP", 50000) in voice_extra  # LiveKit media
    assert all(dest == "internet" for dest, _, _ in voice_extra)

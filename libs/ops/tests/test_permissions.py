"""The permission table follows the subject table, and the deployed file matches the code.

These check the table itself; tests/test_permissions.py checks a real nats-server
enforcing it.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
from pathlib import Path

import pytest

from switchboard.contracts import streams, subjects
from switchboard.contracts.envelope import EVENTS, EventSpec
from switchboard.contracts.subjects import REQUESTS, inbox_prefix
from switchboard.devstack.natsserver import find_binary
from switchboard.ops import cli, natsconf, permissions
from switchboard.ops.permissions import Role, UserPermissions, subject_matches, table

DEPLOYED = Path(__file__).resolve().parents[3] / "deploy" / "k8s" / "nats" / "permissions.conf"
USERS = permissions.table()
BY_USER = {u.user: u for u in USERS}
CALL = "c-1"


def test_the_deployed_permissions_have_not_drifted_from_the_contracts() -> None:
    assert DEPLOYED.read_text() == natsconf.render(USERS), (
        "deploy/k8s/nats/permissions.conf is stale: run `python -m "
        "switchboard.ops permissions --out deploy/k8s/nats/permissions.conf`."
    )


def test_production_passwords_are_environment_references_never_literals() -> None:
    text = natsconf.render(USERS)
    for user in USERS:
        assert f"password: ${natsconf.password_variable(user.user)}\n" in text
    assert text.count("password:") == len(USERS)


def test_each_service_connects_as_the_user_named_like_its_owner_entry() -> None:
    for owner in subjects.Owner:
        assert Role(owner.value).value == owner.value
        assert BY_USER[owner.value].role is Role(owner.value)


def test_every_role_has_exactly_one_user_by_default() -> None:
    assert sorted(u.role for u in USERS) == sorted(Role)
    assert BY_USER["sip-bridge"].role is Role.SIP_BRIDGE


def test_every_request_subject_declares_who_may_send_it() -> None:
    assert set(permissions.CALLERS) == {r.subject for r in REQUESTS}


@pytest.mark.parametrize("req", REQUESTS, ids=lambda r: r.subject)
def test_only_the_owner_may_answer_a_request(req: subjects.RequestSubject) -> None:
    answerers = {u.user for u in USERS if u.may_subscribe(req.subject)}
    assert answerers == {req.owner.value}


@pytest.mark.parametrize("req", REQUESTS, ids=lambda r: r.subject)
def test_only_declared_callers_and_ops_may_send_a_request(req: subjects.RequestSubject) -> None:
    senders = {u.user for u in USERS if u.may_publish(req.subject)}
    ops = set() if req.subject in permissions.NOT_FOR_OPS else {"ops"}
    assert senders == {*ops, *(r.value for r in permissions.CALLERS[req.subject])}


def test_only_the_voice_worker_gets_caller_keys_and_only_the_crm_of_record_opens() -> None:
    key_holders = {u.user for u in USERS if u.may_publish(subjects.CONSENT_CALLER_KEY)}
    assert key_holders == {"voice"}
    openers = {u.user for u in USERS if u.may_publish(subjects.CONSENT_UNSEAL)}
    assert openers == {"crm", "ops"}
    read_only = permissions.crm("analytics")
    assert not read_only.may_publish(subjects.CONSENT_UNSEAL)


def test_the_voice_worker_asks_for_policy_but_cannot_erase_or_read_the_ledger() -> None:
    voice = BY_USER["voice"]
    assert voice.may_publish(subjects.CONSENT_POLICY)
    for subject in (subjects.CONSENT_ERASE, subjects.CONSENT_LOOKUP, subjects.CONSENT_VERIFY):
        assert not voice.may_publish(subject)


@pytest.mark.parametrize("spec", EVENTS, ids=lambda s: f"{s.domain}.{s.name}")
def test_events_are_published_by_their_owner_and_the_declared_fallback_only(
    spec: EventSpec,
) -> None:
    publishers = {u.user for u in USERS if u.may_publish(spec.subject(CALL))}
    expected = {spec.owner.value}
    if (spec.domain, spec.name) == ("escalation", "decided"):
        expected.add("voice")  # the worker's own decision when the router is silent
    assert publishers == expected


def test_only_the_ledger_consumes_consent_commands_and_only_voice_sends_them() -> None:
    command = subjects.consent_record_subject(CALL)
    assert {u.user for u in USERS if u.may_publish(command)} == {"voice"}
    assert not any(u.may_subscribe(command) for u in USERS)
    pull = (
        f"$JS.API.CONSUMER.MSG.NEXT.{streams.CONSENT_COMMANDS.name}."
        f"{streams.CONSENT_LEDGER_CONSUMER}"
    )
    assert {u.user for u in USERS if u.may_publish(pull)} == {"consent"}


def test_a_crm_publishes_nothing_on_sb_and_reads_only_events_and_its_inbox() -> None:
    crm = BY_USER["crm"]
    # Its one request: opening sealed fields (a read, answered by the ledger).
    assert crm.may_publish(subjects.CONSENT_UNSEAL)
    for subject in [
        *(r.subject for r in REQUESTS if r.subject != subjects.CONSENT_UNSEAL),
        *(e.subject(CALL) for e in EVENTS),
        subjects.consent_record_subject(CALL),
        "sb.anything.else",
    ]:
        assert not crm.may_publish(subject), subject
    back_office = {r.subject for r in REQUESTS if r.owner is subjects.Owner.CRM}
    assert {g.subject for g in crm.subscribe if not g.subject.startswith("$SRV")} == {
        "sb.evt.>",
        "_INBOX.crm.>",
        *back_office,
    }
    assert crm.allow_responses
    lookups = {"$JS.API.INFO", "$JS.API.STREAM.NAMES"}
    for grant in crm.publish:
        if grant.subject == subjects.CONSENT_UNSEAL:
            continue
        assert grant.subject.startswith(
            ("$JS.API.", "$JS.ACK.SB_EVENTS.crm.", "$JS.FC.SB_EVENTS.")
        ), grant
        assert ".SB_EVENTS" in grant.subject or grant.subject in lookups, grant


def test_a_crm_owns_the_consumers_listed_for_it_and_they_carry_its_name() -> None:
    """Finding 4: its own named durables (NATS wildcards are whole tokens, so each is
    listed), and nothing for a name another CRM user or service might use."""
    (crm,) = [u for u in table(crm_consumers={"crm": ("crm-billing",)}) if u.user == "crm"]
    assert crm.may_publish("$JS.API.CONSUMER.CREATE.SB_EVENTS.crm-billing.sb.evt.>")
    assert crm.may_publish("$JS.API.CONSUMER.MSG.NEXT.SB_EVENTS.crm-billing")
    assert crm.may_publish("$JS.API.CONSUMER.DELETE.SB_EVENTS.crm-billing")
    assert crm.may_publish("$JS.API.CONSUMER.CREATE.SB_EVENTS")  # ephemeral: ordered
    assert not crm.may_publish("$JS.API.CONSUMER.CREATE.SB_EVENTS.crm-other")
    assert not crm.may_publish("$JS.API.CONSUMER.CREATE.SB_EVENTS.webhook-crm")
    with pytest.raises(ValueError, match="crm-"):
        table(crm_consumers={"crm": ("webhook-crm",)})
    with pytest.raises(ValueError, match="not listed"):
        table(crm_consumers={"someone": ("someone-x",)})


def test_a_crm_may_manage_only_its_own_consumer_on_the_events_stream() -> None:
    crm = BY_USER["crm"]
    assert crm.may_publish("$JS.API.CONSUMER.DURABLE.CREATE.SB_EVENTS.crm")
    assert crm.may_publish("$JS.API.CONSUMER.CREATE.SB_EVENTS.crm.sb.evt.>")
    assert crm.may_publish("$JS.API.CONSUMER.MSG.NEXT.SB_EVENTS.crm")
    assert crm.may_publish("$JS.ACK.SB_EVENTS.crm.1.2.3.4.5")
    for forbidden in (
        "$JS.API.CONSUMER.CREATE.SB_EVENTS.other",
        "$JS.API.CONSUMER.DELETE.SB_EVENTS.other",
        "$JS.API.CONSUMER.DURABLE.CREATE.SB_CONSENT_CMDS.crm",
        "$JS.API.STREAM.UPDATE.SB_EVENTS",
        "$JS.API.STREAM.DELETE.SB_EVENTS",
        "$JS.API.STREAM.PURGE.SB_EVENTS",
        "$JS.ACK.SB_CONSENT_CMDS.consent-ledger.1.2.3.4.5",
    ):
        assert not crm.may_publish(forbidden), forbidden


def test_only_the_back_office_crm_user_answers_back_office_requests() -> None:
    users = {u.user: u for u in permissions.table(crm_users=("crm", "analytics"))}
    assert users["crm"].may_subscribe(subjects.CRM_CREDIT_GRANT)
    assert not users["analytics"].may_subscribe(subjects.CRM_CREDIT_GRANT)
    assert not users["analytics"].allow_responses
    assert {g.subject for g in users["analytics"].subscribe} == {"sb.evt.>", "_INBOX.analytics.>"}


def test_the_webhook_relay_reads_only_its_endpoints_consumers_and_keeps_dead_letters() -> None:
    relay = {u.user: u for u in permissions.table(webhook_endpoints=("acme", "globex"))}[
        "webhook-relay"
    ]
    for endpoint in ("acme", "globex"):
        assert relay.may_publish(f"$JS.API.CONSUMER.MSG.NEXT.SB_EVENTS.webhook-{endpoint}")
        assert relay.may_publish(f"$JS.API.CONSUMER.DELETE.SB_EVENTS.webhook-{endpoint}")
        assert relay.may_publish(f"$JS.ACK.SB_EVENTS.webhook-{endpoint}.1.2.3.4.5")
    for forbidden in (
        "$JS.API.CONSUMER.MSG.NEXT.SB_EVENTS.crm",
        "$JS.ACK.SB_EVENTS.crm.1.2.3.4.5",
        "$JS.API.CONSUMER.DELETE.SB_EVENTS.crm",
        "$JS.API.STREAM.PURGE.SB_WEBHOOK_DEAD",
        "$JS.API.STREAM.DELETE.SB_WEBHOOK_DEAD",
        *(e.subject(CALL) for e in EVENTS),
    ):
        assert not relay.may_publish(forbidden), forbidden
    assert relay.may_publish(subjects.webhook_dead_letter_subject("acme", CALL))
    assert relay.may_subscribe(subjects.WEBHOOK_REPLAY)
    assert not relay.may_subscribe(subjects.EVENTS_WILDCARD)


def test_several_crm_users_each_get_their_own_consumer_and_inbox() -> None:
    users = {u.user: u for u in permissions.table(crm_users=("crm-a", "crm-b"))}
    assert users["crm-a"].may_publish("$JS.API.CONSUMER.MSG.NEXT.SB_EVENTS.crm-a")
    assert not users["crm-a"].may_publish("$JS.API.CONSUMER.MSG.NEXT.SB_EVENTS.crm-b")
    assert not users["crm-a"].may_subscribe("_INBOX.crm-b.x")


@pytest.mark.parametrize("user", USERS, ids=lambda u: u.user)
def test_each_user_reads_replies_under_its_own_inbox_only(user: UserPermissions) -> None:
    assert user.may_subscribe(f"{inbox_prefix(user.user)}.abc.1")
    for other in USERS:
        if other.user != user.user:
            assert not user.may_subscribe(f"{inbox_prefix(other.user)}.abc.1")
    assert not user.may_subscribe("_INBOX.>")


@pytest.mark.parametrize("user", USERS, ids=lambda u: u.user)
def test_no_user_holds_a_catch_all_grant(user: UserPermissions) -> None:
    catch_all = {">", "sb.>", "$JS.>", "$JS.API.>", "$JS.ACK.>", "_INBOX.>", "$KV.>"}
    assert not catch_all & {g.subject for g in (*user.publish, *user.subscribe)}
    assert not user.may_publish("$JS.API.STREAM.DELETE.SB_EVENTS")
    assert not user.may_publish("$JS.API.STREAM.PURGE.SB_CONSENT_CMDS")


def test_only_the_micro_services_may_answer_without_a_publish_grant() -> None:
    answering = {u.user for u in USERS if u.allow_responses}
    assert answering == {"consent", "escalation", "sip-bridge", "crm", "webhook-relay"}


def test_only_the_provisioner_creates_or_updates_streams() -> None:
    """Finding 3: an update can shrink a stream to nothing, so no service may make one;
    the router still creates its queue-state bucket when missing (create only)."""
    provisioned = {s.name for s in streams.ALL_STREAMS}
    creates_or_updates = {
        "provisioner": provisioned,
        "escalation": {f"KV_{permissions.QUEUE_STATE_BUCKET}"},
    }
    names = provisioned | {f"KV_{permissions.QUEUE_STATE_BUCKET}"}
    for user in USERS:
        made = {
            n
            for n in names
            for verb in ("CREATE", "UPDATE")
            if user.may_publish(f"$JS.API.STREAM.{verb}.{n}")
        }
        assert made == creates_or_updates.get(user.user, set()), user.user
    (router,) = [u for u in USERS if u.user == "escalation"]
    assert not router.may_publish(f"$JS.API.STREAM.UPDATE.KV_{permissions.QUEUE_STATE_BUCKET}")


def test_only_the_workforce_feed_writes_queue_state_and_the_router_reads_it() -> None:
    key = f"$KV.{permissions.QUEUE_STATE_BUCKET}.billing"
    assert {u.user for u in USERS if u.may_publish(key)} == {"workforce"}
    get = f"$JS.API.DIRECT.GET.KV_{permissions.QUEUE_STATE_BUCKET}.{key}"
    assert {u.user for u in USERS if u.may_publish(get)} == {"escalation"}


@pytest.mark.parametrize(
    ("pattern", "subject", "matches"),
    [
        ("sb.evt.>", "sb.evt.call.started.c1", True),
        ("sb.evt.>", "sb.evt", False),
        ("sb.evt.*.*.*", "sb.evt.call.started.c1", True),
        ("sb.evt.*.*.*", "sb.evt.call.started", False),
        ("sb.evt.*.*.*", "sb.evt.*.*.c1", True),
        ("sb.evt.*.*.c1", "sb.evt.*.*.*", False),
        ("sb.evt.call.*", "sb.evt.>", False),
        ("sb.>", "sb.evt.>", True),
        ("a.b", "a.b", True),
        ("a.b", "a.b.c", False),
    ],
)
def test_subjects_match_like_nats(pattern: str, subject: str, matches: bool) -> None:
    assert subject_matches(pattern, subject) is matches


def test_user_names_must_be_single_subject_tokens_and_unique() -> None:
    with pytest.raises(ValueError, match="one subject token"):
        inbox_prefix("crm.a")
    with pytest.raises(ValueError, match="unique"):
        permissions.table(crm_users=("voice",))
    assert natsconf.password_variable("sip-bridge") == "SB_NATS_PASSWORD_SIP_BRIDGE"


def test_the_generator_writes_literal_passwords_only_to_private_files(tmp_path: Path) -> None:
    conf, creds = tmp_path / "nats.conf", tmp_path / "creds.json"
    code = cli.main(
        ["permissions", "--out", str(conf), "--passwords", "generate", "--credentials", str(creds)]
    )
    assert code == 0
    passwords = json.loads(creds.read_text())
    assert set(passwords) == set(BY_USER)
    text = conf.read_text()
    for user, password in passwords.items():
        assert f'user: "{user}"\n        password: "{password}"' in text
    for path in (conf, creds):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_the_generator_defaults_to_environment_references(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["permissions", "--crm", "acme"]) == 0
    out = capsys.readouterr().out
    assert "password: $SB_NATS_PASSWORD_ACME" in out
    assert '"$JS.API.CONSUMER.MSG.NEXT.SB_EVENTS.acme"' in out
    with pytest.raises(SystemExit):
        cli.main(["permissions", "--credentials", str(tmp_path / "c.json")])


def test_generated_passwords_survive_nats_servers_variable_parsing(tmp_path: Path) -> None:
    """nats-server parses a ``$VARIABLE``'s value as a config value: a password like
    ``2026-01-05x`` is a date to it and the file is refused. Generated ones never are."""
    users = permissions.table()
    conf = tmp_path / "users.conf"
    conf.write_text(natsconf.render(users))
    env_names = [natsconf.password_variable(u.user) for u in users]

    def check(passwords: list[str]) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, **dict(zip(env_names, passwords, strict=True))}
        return subprocess.run(
            [find_binary(), "-t", "-c", str(conf)],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )

    # The failure this guards against, with the server itself:
    refused = check(["2026-01-05T00:00:00Z"] * len(env_names))
    assert refused.returncode != 0
    for _ in range(20):
        generated = [natsconf.new_password() for _ in env_names]
        assert all(re.fullmatch(r"[A-Za-z][A-Za-z0-9]{31}", p) for p in generated)
        done = check(generated)
        assert done.returncode == 0, done.stderr


def test_only_the_sip_bridge_reads_and_writes_its_transfer_journal() -> None:
    """Finding 9: the bridge keeps its transfers in a KV bucket the provisioning step makes;
    no other user reads (handoff ids, rooms) or writes it."""
    bucket = streams.TRANSFER_STATE
    key = f"$KV.{bucket.name}.t.abc"
    assert {u.user for u in USERS if u.may_publish(key)} == {"sip-bridge"}
    get = f"$JS.API.DIRECT.GET.{bucket.stream}.{key}"
    assert {u.user for u in USERS if u.may_publish(get)} == {"sip-bridge"}
    create = f"$JS.API.STREAM.CREATE.{bucket.stream}"
    assert {u.user for u in USERS if u.may_publish(create)} == {"provisioner"}
    assert not any(u.may_publish(f"$JS.API.STREAM.UPDATE.{bucket.stream}") for u in USERS)

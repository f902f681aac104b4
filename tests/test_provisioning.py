"""Streams are made by the provisioning step; services only check they exist (finding 3)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import nats

from switchboard.contracts import streams, subjects
from switchboard.devstack.launcher import provision
from switchboard.devstack.natsserver import NatsServer
from switchboard.ops import permissions
from switchboard.runtime import provision as provisioning
from switchboard.runtime.bus import PROVISION_COMMAND
from switchboard.runtime.service import EXIT_NOT_PROVISIONED
from tests.stack import write_permissions


def test_the_provisioning_user_is_the_one_the_permission_table_grants() -> None:
    assert permissions.Role.PROVISIONER.value == provisioning.USER
    (user,) = [u for u in permissions.table() if u.role is permissions.Role.PROVISIONER]
    for spec in streams.ALL_STREAMS:
        assert user.may_publish(f"$JS.API.STREAM.UPDATE.{spec.name}")
    assert not any(
        u.may_publish("$JS.API.STREAM.UPDATE.SB_EVENTS")
        for u in permissions.table()
        if u.role is not permissions.Role.PROVISIONER
    )


def test_a_service_refuses_to_start_without_its_stream_and_says_how_to_make_it(
    tmp_path: Path,
) -> None:
    """Finding 3: services no longer create streams, so one started before the
    provisioning step stops at once and names the stream and the step."""
    with NatsServer(store_dir=tmp_path / "nats") as server:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SB_")}
        env["SB_NATS_URL"] = server.url
        done = subprocess.run(
            [sys.executable, "-m", "switchboard.escalation"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert done.returncode == EXIT_NOT_PROVISIONED, done.stdout + done.stderr
    assert streams.EVENTS.name in done.stderr
    assert PROVISION_COMMAND in done.stderr


def test_the_provisioning_step_makes_every_stream_as_its_own_user(tmp_path: Path) -> None:
    config, passwords = write_permissions(tmp_path)
    with NatsServer(store_dir=tmp_path / "nats", config_file=config) as server:
        creds = {"SB_NATS_USER": "provisioner", "SB_NATS_PASSWORD": passwords["provisioner"]}
        provision(server.url, creds)
        provision(server.url, creds)  # again: nothing changes, nothing fails

        async def stream_names() -> set[str]:
            nc = await nats.connect(
                server.url,
                user="ops",
                password=passwords["ops"],
                inbox_prefix=subjects.inbox_prefix("ops"),
            )
            try:
                names = [s.name for s in streams.ALL_STREAMS]
                names += [b.stream for b in streams.ALL_BUCKETS]
                return {
                    (await nc.jetstream().stream_info(name)).config.name or "" for name in names
                }
            finally:
                await nc.close()

        assert asyncio.run(stream_names()) == {s.name for s in streams.ALL_STREAMS} | {
            b.stream for b in streams.ALL_BUCKETS
        }

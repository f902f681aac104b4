"""A bridge killed mid-transfer (finding 9): the next instance ends its transfer cleanly.

The bridge runs as a real subprocess on the test's server (streams and the transfer
journal's bucket provisioned); ``kill -9`` leaves no chance to drain.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from bridge_testkit import TEST_ALLOW
from nats.aio.client import Client as NATS
from test_service import BRIDGE, place, place_request, script, until_serving

from switchboard.contracts import CancelTransfer, FailureReason, LegState, TransferFailed
from switchboard.contracts.errors import ErrorCode
from switchboard.contracts.simulation import SimOutcome
from switchboard.contracts.subjects import TRANSFER_CANCEL, TRANSFER_LEGS, TRANSFER_SIMULATE
from switchboard.contracts.transfer import TransferCancelled, TransferLegs, TransferLegsQuery
from switchboard.devstack.launcher import ServiceProcess
from switchboard.devstack.natsserver import NatsServer
from switchboard.runtime.bus import RequestFailed, request


def bridge_process(nats_server: NatsServer, log: Path) -> ServiceProcess:
    return ServiceProcess(
        module="switchboard.sip_bridge",
        service=BRIDGE,
        env={
            "SB_NATS_URL": nats_server.url,
            "SB_CARRIER_DRIVER": "simulated",
            "SB_TRANSFER_ALLOW": TEST_ALLOW,
            "SB_TRANSFER_ORPHAN_CHECK_S": "0.5",
        },
        log_path=log,
    )


async def ringing(nc: NATS, call_id: str) -> None:
    sub = await nc.jetstream().subscribe(
        f"sb.evt.transfer.ringing.{call_id}", ordered_consumer=True
    )
    try:
        await sub.next_msg(timeout=10)
    finally:
        await sub.unsubscribe()


async def test_a_transfer_of_a_killed_bridge_is_failed_by_the_next_and_its_cancel_answered(
    nats_server: NatsServer, nc: NATS, events: Any, tmp_path: Path
) -> None:
    """Finding 9: a sip-bridge crash left the transfer in progress without a terminal
    event (the caller waited the whole answer timeout in silence) and the restarted
    bridge answered the cancel with ``not_found``."""
    first = bridge_process(nats_server, tmp_path / "first.log").start()
    second: ServiceProcess | None = None
    try:
        await first.ready(nats_server.url)
        await until_serving(nc, TRANSFER_SIMULATE)
        await script(nc, "call-crash", SimOutcome.ANSWER, ring_s=30.0)
        await place_request(nc, place("call-crash"))
        await ringing(nc, "call-crash")
        first.kill()  # SIGKILL: nothing drains, nothing is published

        second = bridge_process(nats_server, tmp_path / "second.log").start()
        await second.ready(nats_server.url)
        received = await events.until_end("call-crash", timeout=15)
        final = received[-1][1]
        assert isinstance(final, TransferFailed)
        assert (final.reason, final.final, final.attempt) == (FailureReason.BRIDGE_LOST, True, 1)
        assert final.destination_id == "billing-desk"

        # The new instance knows the transfer: a cancel gets "already ended", not not_found.
        cancel = CancelTransfer(call_id="call-crash", transfer_id="t-call-crash")
        with pytest.raises(RequestFailed) as refused:
            await request(nc, TRANSFER_CANCEL, cancel, TransferCancelled, 2)
        assert refused.value.error.code is ErrorCode.REJECTED
        assert "failed" in refused.value.error.message
        legs = await request(
            nc, TRANSFER_LEGS, TransferLegsQuery(call_id="call-crash"), TransferLegs, 2
        )
        assert [(leg.attempt, leg.state) for leg in legs.legs] == [(1, LegState.ENDED)]
        assert legs.in_progress == []
    finally:
        first.kill()
        if second is not None:
            second.stop()
    assert "+1415555" not in (tmp_path / "second.log").read_text()

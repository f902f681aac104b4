"""The voice worker seals its events' personal fields, or leaves them out: never plain."""

from __future__ import annotations

from nats.aio.client import Client as NATS

from switchboard.contracts.base import Message
from switchboard.contracts.call import CallbackRequested, CallStarted
from switchboard.contracts.handoff import HandoffContext
from switchboard.runtime.sealing import open_sealed
from switchboard.testing import eventually
from switchboard.testing.fake_backends import FakeLedger
from switchboard.voice.clients.sealing import CallerKeys, SealingEvents

NUMBER = "+14155550123"


class Collected:
    def __init__(self) -> None:
        self.events: list[Message] = []

    async def publish(self, payload: Message) -> str | None:
        self.events.append(payload)
        return "id"

    async def settle(self) -> None:
        return None


def _callback() -> CallbackRequested:
    return CallbackRequested(
        call_id="c-1", reason="r", number=NUMBER, context=HandoffContext(summary="my bill")
    )


async def test_without_the_ledger_personal_fields_are_withheld_not_sent_plain(nc: NATS) -> None:
    sink = Collected()
    events = SealingEvents(sink, CallerKeys(nc, timeout=0.5), "c-1", NUMBER)
    await events.publish(CallStarted(call_id="c-1", room="r", caller_number=NUMBER))
    await events.publish(_callback())
    started, callback = sink.events
    assert isinstance(started, CallStarted)
    assert isinstance(callback, CallbackRequested)
    assert (started.caller_number, started.withheld) == (None, ["caller_number"])
    assert callback.number is None
    assert callback.context == HandoffContext()
    assert callback.withheld == ["context.summary", "number"]
    assert (callback.caller_ref, callback.sealed) == (None, None)


async def test_with_the_ledger_one_key_per_call_seals_every_event(nc: NATS) -> None:
    ledger = await FakeLedger(nc).start()
    sink = Collected()
    events = SealingEvents(sink, CallerKeys(nc, timeout=2.0), "c-1", NUMBER)
    await events.publish(CallStarted(call_id="c-1", room="r", caller_number=NUMBER))
    await events.publish(_callback())
    ref, key = ledger.keys[NUMBER]
    started, callback = sink.events
    assert isinstance(started, CallStarted)
    assert isinstance(callback, CallbackRequested)
    assert started.caller_ref == callback.caller_ref == ref
    assert callback.sealed is not None
    assert open_sealed(callback.sealed, key) == {
        "number": NUMBER,
        "context": {"summary": "my bill"},
    }


async def test_after_a_failure_the_key_is_asked_for_again_without_holding_up_an_event(
    nc: NATS,
) -> None:
    sink = Collected()
    events = SealingEvents(sink, CallerKeys(nc, timeout=2.0), "c-1", NUMBER)
    await events.publish(CallStarted(call_id="c-1", room="r", caller_number=NUMBER))
    ledger = await FakeLedger(nc).start()  # the ledger comes back
    await events.publish(_callback())  # asks again in the background; does not wait

    async def sealed_again() -> bool:
        await events.publish(_callback())
        last = sink.events[-1]
        assert isinstance(last, CallbackRequested)
        return last.sealed is not None

    await eventually(sealed_again, message="the key was not asked for again")
    started, withheld = sink.events[:2]
    assert isinstance(started, CallStarted)
    assert isinstance(withheld, CallbackRequested)
    assert started.withheld == ["caller_number"]
    assert withheld.withheld == ["context.summary", "number"]
    assert sink.events[-1].caller_ref == ledger.keys[NUMBER][0]  # type: ignore[attr-defined]
    await events.settle()

"""A scripted back office for text-mode calls: fixed answers from a data file.

It stands in for the customer's billing, diagnostics, catalogue and order systems so the
whole call graph runs on a machine with none of them. The answers are invented test data
(``data/backoffice.toml``); orders and credits are kept in memory and get references of
their own, so a scenario can check what the call did.
"""

from __future__ import annotations

import itertools
import tomllib
from dataclasses import dataclass, field
from importlib import resources

import msgspec

from switchboard.voice.state import CallInfo


class Troubleshooting(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    attempts: int
    steps: dict[str, str]
    same_as: dict[str, str] = msgspec.field(default_factory=dict)


class Script(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    latest_bill: str
    plans: str
    troubleshooting: Troubleshooting


def load_script() -> Script:
    """The packaged answers."""
    text = resources.files("switchboard.simulation").joinpath("data", "backoffice.toml")
    return msgspec.convert(tomllib.loads(text.read_text("utf-8")), Script)


@dataclass(frozen=True, slots=True)
class Order:
    reference: str
    call_id: str
    product: str
    email: str
    address: str


@dataclass(frozen=True, slots=True)
class Credit:
    reference: str
    call_id: str
    amount: float


@dataclass
class ScriptedBackOffice:
    """Implements ``switchboard.voice.backoffice.BackOffice`` from a script."""

    script: Script = field(default_factory=load_script)
    orders: list[Order] = field(default_factory=list)
    credits: list[Credit] = field(default_factory=list)
    _numbers: itertools.count[int] = field(default_factory=lambda: itertools.count(1001))

    async def latest_bill(self, caller: CallInfo) -> str:
        return self.script.latest_bill

    async def troubleshooting(self, problem: str, attempt: int) -> str | None:
        kb = self.script.troubleshooting
        if attempt > kb.attempts:
            return None
        if attempt == kb.attempts:
            return kb.steps["general"]
        topic = kb.same_as.get(problem, problem)
        return kb.steps.get(topic, kb.steps["general"])

    async def plans(self) -> str:
        return self.script.plans

    async def place_order(self, caller: CallInfo, product: str, email: str, address: str) -> str:
        order = Order(f"ORD-{next(self._numbers)}", caller.call_id, product, email, address)
        self.orders.append(order)
        return order.reference

    async def grant_credit(self, caller: CallInfo, amount: float) -> str:
        credit = Credit(f"CR-{next(self._numbers)}", caller.call_id, amount)
        self.credits.append(credit)
        return credit.reference

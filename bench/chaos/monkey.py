"""When which fault happens: one at a time, at random moments, from a seeded generator.

Faults come in rounds, each round every kind once in a shuffled order (so a short run
still has each kind), spaced by an exponential pause of mean ``every_s`` (faults also come
close together); each is over (the process restarted and answering) before the next
pause starts. A killed service stays down up to ``down_s`` before its
restart, long enough for calls to notice.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass

from bench.chaos.stack import KILLABLE, ChaosStack

log = logging.getLogger(__name__)

NATS = "nats"
POSTGRES = "pg"
FAULTS = (*KILLABLE, NATS, POSTGRES)


@dataclass
class ChaosMonkey:
    stack: ChaosStack
    rng: random.Random
    every_s: float
    down_s: float

    async def run(self, stop: asyncio.Event) -> None:
        """Do faults until ``stop`` is set; the last one finishes before this returns."""
        if self.every_s <= 0:
            return
        while True:
            for fault in self.rng.sample(FAULTS, len(FAULTS)):
                pause = self.rng.expovariate(1 / self.every_s)
                try:
                    await asyncio.wait_for(stop.wait(), pause)
                    return
                except TimeoutError:
                    pass
                await self.fault(fault)

    async def fault(self, fault: str) -> None:
        down = self.rng.uniform(0, self.down_s)
        log.warning("Chaos: %s.", fault)
        async with self.stack.lock:
            await self._do(fault, down)

    async def _do(self, fault: str, down: float) -> None:
        if fault == NATS:
            await self.stack.restart_nats(down)
        elif fault == POSTGRES:
            await self.stack.cut_postgres()
        else:
            await self.stack.kill(fault, down)

"""Webhook relay throughput and added latency against a bare consumer, in the same run.

``python -m bench.webhook_bench`` starts its own nats-server and an HTTP receiver on
127.0.0.1 (in this process), then for each target in turn, with a fresh server:

- relay: ``python -m switchboard.webhook_relay`` (one endpoint; Standard Webhooks
  signatures, one ordered lane per call, retries, ack after 2xx);
- bare: a bare nats-py pull consumer in its own process that POSTs each event as it is,
  unsigned, with the same HTTP client and the same number of POSTs in flight, no
  per-call order and no retries, acking after the 2xx.

Two measures per target:

- burst: ``--events`` events over ``--calls`` calls published at once; throughput is
  events received / time from the first publish to the last event received.
- paced: ``--rate`` events/s for ``--paced-events`` events; latency is from just before the
  JetStream publish (which returns once the event is stored) to the receiver's handler.

The receiver answers 204 at once. The last line printed is a JSON object with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import nats
from aiohttp import web
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext as JetStream
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from switchboard.contracts import streams, subjects
from switchboard.contracts.call import AgentHandedOff
from switchboard.devstack.launcher import ServiceProcess, provision
from switchboard.devstack.natsserver import NatsServer
from switchboard.runtime.bus import EventPublisher
from switchboard.webhook_relay.signing import new_secret

CONCURRENCY = 16


@dataclass
class Receiver:
    """Counts events and when each arrived (by CloudEvent id)."""

    arrived: dict[str, float] = field(default_factory=dict)
    want: int = 0
    enough: asyncio.Event = field(default_factory=asyncio.Event)
    posts: int = 0
    port: int = 0
    _runner: web.AppRunner | None = None

    async def start(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/hooks", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def _handle(self, request: web.Request) -> web.Response:
        now = time.time()
        body = await request.read()
        self.posts += 1
        event_id = json.loads(body)["id"]
        self.arrived.setdefault(event_id, now)
        if len(self.arrived) >= self.want:
            self.enough.set()
        return web.Response(status=204)

    def expect(self, count: int) -> None:
        """Start counting afresh; ``enough`` is set once ``count`` events arrived."""
        self.arrived.clear()
        self.want = count
        self.enough.clear()

    async def wait(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.enough.wait(), timeout)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


async def serve_bare(nats_url: str, url: str) -> None:
    """The baseline: pull, POST as is (no signature), ack after the 2xx; no order, no retry."""
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    psub = await js.pull_subscribe(
        subjects.EVENTS_WILDCARD,
        durable="bare",
        stream=streams.EVENTS.name,
        config=ConsumerConfig(
            ack_policy=AckPolicy.EXPLICIT, deliver_policy=DeliverPolicy.NEW, max_ack_pending=1000
        ),
    )
    slots = asyncio.Semaphore(CONCURRENCY)
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession() as session:

        async def post(msg: Msg) -> None:
            async with (
                slots,
                session.post(
                    url,
                    data=msg.data,
                    headers={"content-type": "application/cloudevents+json"},
                    timeout=timeout,
                ) as response,
            ):
                response.release()
            await msg.ack()

        pending: set[asyncio.Task[None]] = set()
        while True:
            try:
                batch = await psub.fetch(batch=256, timeout=1.0)
            except (NatsTimeoutError, TimeoutError):
                continue
            for msg in batch:
                task = asyncio.create_task(post(msg))
                pending.add(task)
                task.add_done_callback(pending.discard)


def _start(target: str, server: NatsServer, url: str, workdir: Path) -> ServiceProcess:
    if target == "relay":
        secret = workdir / "secret"
        secret.write_text(new_secret())
        endpoints = workdir / "endpoints.toml"
        endpoints.write_text(
            f'[[endpoints]]\nname = "bench"\nurl = "{url}"\nsecret_file = "{secret}"\n'
        )
        env = {
            "SB_NATS_URL": server.url,
            "SB_WEBHOOK_ENDPOINTS_FILE": str(endpoints),
            "SB_WEBHOOK_CONCURRENCY": str(CONCURRENCY),
            "SB_LOG_LEVEL": "WARNING",
        }
        return ServiceProcess(
            "switchboard.webhook_relay", "webhook-relay", env=env, log_path=workdir / "relay.log"
        ).start()
    proc = ServiceProcess(
        "bench.webhook_bench",
        "bare",
        args=["--serve-bare", server.url, url],
        log_path=workdir / "bare.log",
    )
    return proc.start()


async def _ready(target: str, proc: ServiceProcess, server: NatsServer, js: JetStream) -> None:
    if target == "relay":
        await proc.ready(server.url)
        return
    for _ in range(400):  # the bare consumer is ready once its consumer exists
        try:
            await js.consumer_info(streams.EVENTS.name, "bare")
            return
        except NotFoundError:
            await asyncio.sleep(0.05)
    raise RuntimeError("the bare consumer did not start")


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def measure(target: str, args: argparse.Namespace) -> dict[str, float]:
    receiver = await Receiver().start()
    url = f"http://127.0.0.1:{receiver.port}/hooks"
    with tempfile.TemporaryDirectory() as tmp, NatsServer() as server:
        workdir = Path(tmp)
        nc = await nats.connect(server.url)
        js = nc.jetstream()
        await asyncio.to_thread(provision, server.url)
        proc = _start(target, server, url, workdir)
        try:
            await _ready(target, proc, server, js)
            publisher = EventPublisher(js)
            # Burst: everything at once, throughput until the last one arrives.
            receiver.expect(args.events)
            started = time.time()
            for i in range(args.events):
                call_id = f"call-{i % args.calls}"
                await publisher.send(
                    AgentHandedOff(call_id=call_id, from_agent="a", to_agent="b", reason=str(i))
                )
            await publisher.settle(30)
            await receiver.wait(120)
            burst_s = max(receiver.arrived.values()) - started
            got = len(receiver.arrived)
            # Paced: latency from publish (stored) to the receiver.
            receiver.expect(args.paced_events)
            sent: dict[str, float] = {}
            gap = 1.0 / args.rate
            for i in range(args.paced_events):
                call_id = f"paced-{i % args.calls}"
                t0 = time.time()
                event_id = await publisher.publish(
                    AgentHandedOff(call_id=call_id, from_agent="a", to_agent="b", reason=str(i))
                )
                sent[event_id] = t0
                await asyncio.sleep(max(0.0, t0 + gap - time.time()))
            await receiver.wait(30)
            lat = [
                (receiver.arrived[i] - t) * 1000 for i, t in sent.items() if i in receiver.arrived
            ]
        finally:
            proc.kill()
            await nc.close()
            await receiver.stop()
    return {
        "events": args.events,
        "received": got,
        "throughput_per_s": round(got / burst_s, 1),
        "latency_p50_ms": round(statistics.median(lat), 2),
        "latency_p99_ms": round(_pct(lat, 0.99), 2),
        "paced_received": len(lat),
    }


async def run(args: argparse.Namespace) -> dict[str, object]:
    results: dict[str, list[dict[str, float]]] = {"bare": [], "relay": []}
    for round_ in range(args.rounds):
        for target in ("bare", "relay"):
            got = await measure(target, args)
            results[target].append(got)
            print(f"round {round_ + 1} {target:>5}: {got}", flush=True)

    def best(target: str, key: str, pick: object) -> float:
        values = [r[key] for r in results[target]]
        return max(values) if pick == "max" else min(values)

    relay_tp, bare_tp = (
        best("relay", "throughput_per_s", "max"),
        best("bare", "throughput_per_s", "max"),
    )
    relay_p50, bare_p50 = (
        best("relay", "latency_p50_ms", "min"),
        best("bare", "latency_p50_ms", "min"),
    )
    relay_p99, bare_p99 = (
        best("relay", "latency_p99_ms", "min"),
        best("bare", "latency_p99_ms", "min"),
    )
    return {
        "bench": "webhook_relay",
        "events": args.events,
        "calls": args.calls,
        "paced_rate_per_s": args.rate,
        "concurrency": CONCURRENCY,
        "relay_throughput_per_s": relay_tp,
        "bare_throughput_per_s": bare_tp,
        "throughput_ratio": round(relay_tp / bare_tp, 2),
        "relay_latency_p50_ms": relay_p50,
        "relay_latency_p99_ms": relay_p99,
        "bare_latency_p50_ms": bare_p50,
        "bare_latency_p99_ms": bare_p99,
        "added_latency_p50_ms": round(relay_p50 - bare_p50, 2),
        "added_latency_p99_ms": round(relay_p99 - bare_p99, 2),
        "every_event_received": all(
            r["received"] == args.events and r["paced_received"] == args.paced_events
            for rs in results.values()
            for r in rs
        ),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Webhook relay vs a bare POSTing consumer.")
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--paced-events", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--serve-bare", nargs=2, metavar=("NATS_URL", "URL"), help=argparse.SUPPRESS
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve_bare:
        asyncio.run(serve_bare(*args.serve_bare))
        return 0
    print(f"webhook bench: {args.events} events over {args.calls} calls", flush=True)
    result = asyncio.run(run(args))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

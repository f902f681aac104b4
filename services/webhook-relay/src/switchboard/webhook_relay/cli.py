"""``python -m switchboard.webhook_relay``: run the relay, or list and replay its dead
letters (as an operator: the ``ops`` NATS user in production)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

import msgspec

from switchboard.contracts.subjects import WEBHOOK_DEAD_LETTERS, WEBHOOK_REPLAY, Owner
from switchboard.contracts.webhook import (
    DeadLetters,
    DeadLettersReplayed,
    ListDeadLetters,
    ReplayDeadLetters,
)
from switchboard.runtime.bus import RequestFailed, connect, request
from switchboard.runtime.logs import configure_logging
from switchboard.runtime.service import run_service
from switchboard.runtime.settings import ServiceSettings, SettingsError, load
from switchboard.webhook_relay import __version__
from switchboard.webhook_relay.app import REPLAY_TIMEOUT_S, build_setup
from switchboard.webhook_relay.endpoints import EndpointsError, load_endpoints
from switchboard.webhook_relay.settings import RelaySettings

PROG = "python -m switchboard.webhook_relay"
EXIT_CONFIG = 2
EXIT_FAILED = 1
log = logging.getLogger("switchboard.webhook_relay")


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog=PROG, description="Switchboard's signed webhook relay.")
    commands = root.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser("run", help="relay events to the configured endpoints (the default)")
    listing = commands.add_parser("dead-letters", help="list dead letters, oldest first")
    replay = commands.add_parser("replay", help="deliver dead letters again, in order")
    for sub in (listing, replay):
        sub.add_argument("--endpoint", help="one endpoint only")
        sub.add_argument("--call", dest="call_id", help="one call only")
        sub.add_argument("--json", action="store_true", help="print the reply as JSON")
    listing.add_argument("--limit", type=int, default=100)
    replay.add_argument("--event", dest="event_id", help="up to this event of its call")
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command in (None, "run"):
        return _run()
    try:
        # The relay's own settings: run inside its pod, the CLI sees its environment.
        settings = load(RelaySettings)
    except SettingsError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_CONFIG
    return asyncio.run(_operate(settings, args))


def _run() -> int:
    configure_logging(Owner.WEBHOOK_RELAY.value)
    try:
        settings = load(RelaySettings)
        endpoints = load_endpoints(settings.webhook_endpoints_file, settings.webhook_give_up_s)
    except (SettingsError, EndpointsError) as exc:
        log.critical("Refusing to start: the configuration is invalid.", extra={"error": str(exc)})
        return EXIT_CONFIG
    asyncio.run(
        run_service(
            Owner.WEBHOOK_RELAY.value,
            __version__,
            settings,
            build_setup(endpoints, settings),
            description="Webhook relay: signed CloudEvents to CRMs over HTTP.",
        )
    )
    return 0


async def _operate(settings: ServiceSettings, args: argparse.Namespace) -> int:
    name = settings.nats_user or "ops"
    nc = await connect(settings, name)
    try:
        if args.command == "dead-letters":
            query = ListDeadLetters(endpoint=args.endpoint, call_id=args.call_id, limit=args.limit)
            listed: DeadLetters = await request(
                nc, WEBHOOK_DEAD_LETTERS, query, DeadLetters, settings.request_timeout_s
            )
            _print_list(listed, args.json)
            return 0
        command = ReplayDeadLetters(
            endpoint=args.endpoint, call_id=args.call_id, event_id=args.event_id
        )
        replayed: DeadLettersReplayed = await request(
            nc, WEBHOOK_REPLAY, command, DeadLettersReplayed, REPLAY_TIMEOUT_S + 10
        )
        _print_replay(replayed, args.json)
        return 0 if not replayed.failed else EXIT_FAILED
    except RequestFailed as exc:
        print(exc.error.message, file=sys.stderr)
        return EXIT_FAILED
    finally:
        await nc.close()


def _print_list(listed: DeadLetters, as_json: bool) -> None:
    if as_json:
        print(msgspec.json.encode(listed).decode())
        return
    for d in listed.dead_letters:
        status = d.last_status if d.last_status is not None else "-"
        print(
            f"{d.dead_at:%Y-%m-%d %H:%M:%S}  {d.endpoint:<16} {d.call_id:<24} {d.event_id}  "
            f"{d.event_type}  {d.reason} after {d.attempts} attempt(s), "
            f"last {status} {d.last_error}"
        )
    print(f"{len(listed.dead_letters)} shown of {listed.total} dead letter(s).")


def _print_replay(replayed: DeadLettersReplayed, as_json: bool) -> None:
    if as_json:
        print(msgspec.json.encode(replayed).decode())
        return
    print(f"Delivered {replayed.delivered}; {replayed.left} left.")
    for f in replayed.failed:
        print(
            f"  not delivered: {f.endpoint} {f.call_id} {f.event_id} "
            f"({f.last_status} {f.last_error})"
        )

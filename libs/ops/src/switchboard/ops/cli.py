"""The ``python -m switchboard.ops`` command line: one subcommand per tool."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from switchboard.ops import natsconf, schemas
from switchboard.ops.permissions import (
    DEFAULT_CRM_USERS,
    DEFAULT_WEBHOOK_ENDPOINTS,
    QUEUE_STATE_BUCKET,
    table,
)

PROG = "python -m switchboard.ops"
DEFAULT_SCHEMAS_DIR = Path("contracts/schemas")


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog=PROG, description="Switchboard operations tooling.")
    commands = root.add_subparsers(dest="command", required=True, metavar="COMMAND")
    perms = commands.add_parser(
        "permissions",
        help="write the nats-server users and permissions",
        description="Write the nats-server users and permissions of Switchboard.",
    )
    perms.add_argument("--out", type=Path, help="write here instead of stdout")
    perms.add_argument(
        "--passwords",
        choices=("env", "generate"),
        default="env",
        help="env: $SB_NATS_PASSWORD_<USER> references (production); "
        "generate: random literal passwords (local runs)",
    )
    perms.add_argument(
        "--credentials", type=Path, help="with --passwords generate: save them here as JSON"
    )
    perms.add_argument(
        "--crm",
        action="append",
        metavar="USER",
        help=f"a CRM user (repeatable; default {', '.join(DEFAULT_CRM_USERS)})",
    )
    perms.add_argument(
        "--crm-consumer",
        action="append",
        metavar="USER=NAME",
        help="another durable consumer a CRM user owns, named USER-<something> "
        "(repeatable; each CRM user always owns the consumer named after it)",
    )
    perms.add_argument("--bucket", default=QUEUE_STATE_BUCKET, help="the queue-state KV bucket")
    perms.add_argument(
        "--webhook",
        action="append",
        metavar="ENDPOINT",
        help="a webhook relay endpoint, as named in its endpoints file (repeatable; "
        f"default {', '.join(DEFAULT_WEBHOOK_ENDPOINTS)})",
    )
    perms.set_defaults(run=_permissions)
    export = commands.add_parser(
        "schemas",
        help="export the JSON Schema and AsyncAPI documents",
        description="Write the JSON Schema of every message and the AsyncAPI document.",
    )
    export.add_argument(
        "directory",
        type=Path,
        nargs="?",
        default=DEFAULT_SCHEMAS_DIR,
        help=f"where to write them (default {DEFAULT_SCHEMAS_DIR})",
    )
    export.set_defaults(run=_schemas)
    return root


def main(argv: list[str] | None = None) -> int:
    cli = parser()
    args = cli.parse_args(argv)
    code: int = args.run(cli, args)
    return code


def _permissions(cli: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    if args.credentials is not None and args.passwords != "generate":
        cli.error("--credentials needs --passwords generate")
    consumers: dict[str, list[str]] = {}
    for entry in args.crm_consumer or ():
        user, sep, name = entry.partition("=")
        if not sep:
            cli.error(f"--crm-consumer takes USER=NAME, not {entry!r}")
        consumers.setdefault(user, []).append(name)
    try:
        users = table(
            tuple(args.crm or DEFAULT_CRM_USERS),
            args.bucket,
            tuple(args.webhook or DEFAULT_WEBHOOK_ENDPOINTS),
            consumers,
        )
    except ValueError as exc:
        cli.error(str(exc))
    passwords = natsconf.generate_passwords(users) if args.passwords == "generate" else None
    text = natsconf.render(users, passwords)
    if args.credentials is not None and passwords is not None:
        natsconf.write_private(args.credentials, json.dumps(passwords, indent=2) + "\n")
    if args.out is None:
        sys.stdout.write(text)
    elif passwords is not None:
        natsconf.write_private(args.out, text)
    else:
        args.out.write_text(text)
    return 0


def _schemas(cli: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    for path in schemas.write(args.directory):
        print(path)
    return 0

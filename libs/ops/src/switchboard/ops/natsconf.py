"""The nats-server configuration fragment of the permission table, and its passwords.

Production passwords are ``$SB_NATS_PASSWORD_<USER>`` references that nats-server
resolves from its environment (it refuses to start when one is unset); local runs and
tests generate literal random passwords instead, written only to owner-readable files.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Final

from switchboard.ops.permissions import ACCOUNT, Grant, UserPermissions

PASSWORD_VARIABLE_PREFIX: Final = "SB_NATS_PASSWORD_"
GENERATOR_COMMAND: Final = "python -m switchboard.ops permissions"


def password_variable(user: str) -> str:
    """The environment variable nats-server reads the user's password from."""
    return PASSWORD_VARIABLE_PREFIX + re.sub(r"[^A-Za-z0-9]", "_", user).upper()


PASSWORD_LENGTH: Final = 32
_LETTERS: Final = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_ALPHABET: Final = _LETTERS + "0123456789"


def new_password() -> str:
    """A random password nats-server reads back as the same string.

    nats-server parses the value of a ``$VARIABLE`` reference as a configuration value, so
    a password such as ``2026-01-05…`` becomes a date and ``10k…`` a size, and the server
    refuses the file. A letter first and letters and digits after always parse as a string
    (about 190 bits).
    """
    return secrets.choice(_LETTERS) + "".join(
        secrets.choice(_ALPHABET) for _ in range(PASSWORD_LENGTH - 1)
    )


def generate_passwords(users: Iterable[UserPermissions]) -> dict[str, str]:
    """A random password per user (for local runs and tests)."""
    return {u.user: new_password() for u in users}


def render(
    users: Sequence[UserPermissions],
    passwords: Mapping[str, str] | None = None,
    account: str = ACCOUNT,
) -> str:
    """The nats-server configuration fragment: one account with JetStream and the users.

    Without ``passwords`` each password is a ``$SB_NATS_PASSWORD_<USER>`` reference that
    nats-server resolves from its environment (it refuses to start when one is unset).
    """
    lines = [
        "# NATS users and permissions of Switchboard, one user per role.",
        "# Generated from switchboard.contracts (subjects, events, streams) by",
        f"#   {GENERATOR_COMMAND} --out <this file>",
        "# Do not edit: change the contracts and regenerate (a test compares).",
    ]
    if passwords is None:
        lines.append(
            "# Passwords come from the server's environment: "
            + ", ".join(password_variable(u.user) for u in users)
            + "."
        )
    lines += ["accounts {", f"  {account} {{", "    jetstream: enabled", "    users: ["]
    for u in users:
        secret = _password(u.user, passwords)
        lines += [
            f"      # {u.user}: {u.summary}",
            "      {",
            f"        user: {_quote(u.user)}",
            f"        password: {secret}",
            "        permissions: {",
            *_allow("publish", u.publish),
            *_allow("subscribe", u.subscribe),
        ]
        if u.allow_responses:
            lines.append("          allow_responses: true")
        lines += ["        }", "      }"]
    lines += ["    ]", "  }", "}", ""]
    return "\n".join(lines)


def _password(user: str, passwords: Mapping[str, str] | None) -> str:
    if passwords is None:
        return "$" + password_variable(user)
    return _quote(passwords[user])


def _allow(direction: str, grants: tuple[Grant, ...]) -> list[str]:
    lines = [f"          {direction}: {{", "            allow: ["]
    seen: set[str] = set()
    for g in grants:
        if g.subject in seen:
            continue
        seen.add(g.subject)
        lines.append(f"              {_quote(g.subject)}  # {_comment(g.why)}")
    return [*lines, "            ]", "          }"]


def _quote(value: str) -> str:
    # Quoted strings are literal in the NATS config format (a `$` is not a variable).
    if any(c in value for c in '"\\\n'):
        raise ValueError(f"Cannot quote {value!r} for a NATS config file.")
    return f'"{value}"'


def _comment(text: str) -> str:
    return " ".join(text.split())


def write_private(path: Path, text: str) -> None:
    """Write a file holding passwords readable by its owner only."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # an existing file keeps its mode through O_CREAT
    with os.fdopen(fd, "w") as f:
        f.write(text)

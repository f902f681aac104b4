"""Reading key files, and creating them for local runs (mode 0600, parents created)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path


class KeyFileError(RuntimeError):
    """A key file is missing (and may not be created) or cannot be used."""


def read_or_create(path: Path, generate: bool, make: Callable[[], bytes]) -> bytes:
    """The file's bytes; when it is missing and ``generate`` is set, write ``make()`` first."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        if not generate:
            raise KeyFileError(
                f"Key file {path} does not exist and key generation is disabled "
                "(SB_LEDGER_GENERATE_KEYS=false)."
            ) from None
    path.parent.mkdir(parents=True, exist_ok=True)
    data = make()
    # O_EXCL: if another process created it meanwhile, use theirs rather than overwrite.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes()
    with os.fdopen(fd, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    return data

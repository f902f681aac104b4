"""Command line of the voice worker.

python -m switchboard.voice start [LIVEKIT CLI ARGS]     the production LiveKit worker

Everything after ``start`` goes to LiveKit's own worker CLI (``start``, ``dev``...).
Scripted text-mode calls and the demo are ``python -m switchboard.simulation``.
"""

from __future__ import annotations

import argparse
import sys

from switchboard.runtime.settings import SettingsError, load
from switchboard.voice.settings import VoiceSettings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m switchboard.voice")
    sub = parser.add_subparsers(dest="command", required=True)
    start = sub.add_parser("start", help="Run the production LiveKit worker.", add_help=False)
    start.add_argument("livekit_args", nargs=argparse.REMAINDER)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    # Everything after ``start`` belongs to LiveKit's own CLI, options included.
    args, extra = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    try:
        load(VoiceSettings)
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return 2
    from switchboard.voice import worker  # imports the provider plugins: only here

    return worker.main(["start", *args.livekit_args, *extra])


if __name__ == "__main__":
    raise SystemExit(main())

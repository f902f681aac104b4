"""Command line of the voice worker.

python -m switchboard.voice start [LIVEKIT CLI ARGS]     the production LiveKit worker
python -m switchboard.voice screen [--json] FILE|-      what the screening reads in each line

Everything after ``start`` goes to LiveKit's own worker CLI (``start``, ``dev``...).
Scripted text-mode calls and the demo are ``python -m switchboard.simulation``.
"""

from __future__ import annotations

import argparse
import json
import sys

from switchboard.runtime.settings import SettingsError, load
from switchboard.voice.settings import VoiceSettings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m switchboard.voice")
    sub = parser.add_subparsers(dest="command", required=True)
    start = sub.add_parser("start", help="Run the production LiveKit worker.", add_help=False)
    start.add_argument("livekit_args", nargs=argparse.REMAINDER)
    screen = sub.add_parser(
        "screen",
        help="Read one caller utterance per line with no model: the escalation class, "
        "whether it withdraws recording consent, and whether the screen acts before a model.",
    )
    screen.add_argument("file", help="a text file, or - for standard input")
    screen.add_argument("--json", action="store_true", help="JSON lines")
    return parser


def _screen(path: str, as_json: bool) -> int:
    from switchboard.voice import understanding  # no LiveKit plugins for this

    try:
        stream = sys.stdin if path == "-" else open(path, encoding="utf-8")  # noqa: SIM115
    except OSError as exc:
        print(f"Cannot read {path}: {exc.strerror}.", file=sys.stderr)
        return 2
    with stream:
        for line in stream:
            text = line.rstrip("\n")
            if not text.strip():
                continue
            found = understanding.read(text)
            if as_json:
                row = {
                    "text": text,
                    "escalation": found.escalation,
                    "revokes": found.revokes,
                    "pre_model": found.pre_model,
                }
                print(json.dumps(row, ensure_ascii=False))
            else:
                flags = ("revokes " if found.revokes else "") + (
                    "pre-model" if found.pre_model else ""
                )
                print(f"{found.escalation or 'none':<8} {flags:<17} {text}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    # Everything after ``start`` belongs to LiveKit's own CLI, options included.
    args, extra = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    if args.command == "screen":
        if extra:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        return _screen(args.file, args.json)
    try:
        load(VoiceSettings)
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return 2
    from switchboard.voice import worker  # imports the provider plugins: only here

    return worker.main(["start", *args.livekit_args, *extra])


if __name__ == "__main__":
    raise SystemExit(main())

"""Command line of the simulation.

python -m switchboard.simulation run-scenario FILE [--json] [--audio [--speed X]]   one call
python -m switchboard.simulation demo [--scenarios DIR] [--audio]   what `make demo` runs
python -m switchboard.simulation voices [--scenarios DIR]    WAV files of the audio scenarios
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path

from switchboard.contracts.subjects import Owner
from switchboard.runtime import telemetry
from switchboard.runtime.logs import configure_logging
from switchboard.runtime.settings import SettingsError, load
from switchboard.simulation import report as reports
from switchboard.simulation import scenario as scenarios
from switchboard.simulation.audio.rig import DEFAULT_SPEED, AudioMode
from switchboard.simulation.audio.voices import VOICES, write_voices
from switchboard.simulation.demo import AUDIO_SCENARIOS, run_demo
from switchboard.simulation.runner import Live, run_scenario
from switchboard.simulation.settings import SimulationSettings
from switchboard.voice import collector, logfilter, providers
from switchboard.voice.wiring import open_bus


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m switchboard.simulation")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run-scenario", help="Play one scenario file in text mode.")
    run.add_argument("file", type=Path)
    run.add_argument("--json", action="store_true", help="Print the report as JSON.")
    _audio_arguments(run, speed=DEFAULT_SPEED)
    demo = sub.add_parser("demo", help="Start NATS and the services; play every scenario.")
    demo.add_argument("--scenarios", type=Path, default=None)
    _audio_arguments(demo, speed=1.0)
    voices = sub.add_parser(
        "voices", help="Write the WAV files of the audio scenarios' caller lines (espeak-ng)."
    )
    voices.add_argument("--scenarios", type=Path, default=None)
    return parser


def _audio_arguments(parser: argparse.ArgumentParser, *, speed: float) -> None:
    parser.add_argument(
        "--audio",
        action="store_true",
        help="Speak the call: real VAD, STT and TTS plugins, the caller as speech.",
    )
    parser.add_argument(
        "--speed",
        type=float,
        default=speed,
        help=f"Audio mode: audio seconds per second (default {speed:g}; 1 is real time).",
    )


def _audio_mode(args: argparse.Namespace, scenarios_dir: Path) -> AudioMode | None:
    if not args.audio:
        return None
    return AudioMode(voices_dir=scenarios_dir / VOICES, speed=args.speed)


def _quiet_logs(settings: SimulationSettings, log_file: Path | None = None) -> None:
    """Reports go to stdout; logs (JSON, personal data redacted) to stderr or a file."""
    stream = log_file.open("a", encoding="utf-8") if log_file is not None else None
    level = settings.log_level if log_file is not None else "WARNING"
    configure_logging(Owner.VOICE.value, level, stream)
    logfilter.install()
    # livekit-agents is chatty about text-only sessions; keep warnings from it for files.
    logging.getLogger("livekit").setLevel(logging.ERROR if log_file is None else logging.WARNING)


async def _run_one(
    settings: SimulationSettings, path: Path, as_json: bool, audio: AudioMode | None
) -> int:
    try:
        scenario = scenarios.load(path)
        chat_model = providers.language_model(settings, os.environ)
    except (scenarios.ScenarioError, providers.ProviderError) as exc:
        print(exc, file=sys.stderr)
        return 2
    try:
        bus = await open_bus(settings)
    except Exception as exc:
        print(f"Cannot reach NATS at {settings.nats_url}: {type(exc).__name__}.", file=sys.stderr)
        return 2
    live = (
        None
        if as_json
        else Live(
            on_line=lambda line: print(reports.format_line(line), flush=True),
            on_event=lambda event: print(reports.format_event(event), flush=True),
        )
    )
    try:
        report = await run_scenario(
            scenario, bus, settings, live, chat_model=chat_model, audio=audio
        )
    finally:
        await bus.close()
    if as_json:
        sys.stdout.buffer.write(reports.to_json(report) + b"\n")
    else:
        print(reports.render_tail(report))
    return 0 if report.ok else 1


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
    try:
        settings = load(SimulationSettings)
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return 2
    if args.command == "voices":
        return write_voices(args.scenarios or Path(settings.scenarios_dir) / AUDIO_SCENARIOS)
    if args.command == "demo":
        log_file = Path(settings.var_dir) / "logs" / "voice.log"
        log_file.parent.mkdir(parents=True, exist_ok=True)
        _quiet_logs(settings, log_file)
        collector.prepare_for_calls()
        default = Path(settings.scenarios_dir)
        directory = args.scenarios or (default / AUDIO_SCENARIOS if args.audio else default)
        return run_demo(settings, directory, _audio_mode(args, directory))
    _quiet_logs(settings)
    collector.prepare_for_calls()
    # The scripted call is the voice worker's side of the trace (service name "voice").
    telemetry.setup_tracing(Owner.VOICE.value, settings.trace_exporter)
    try:
        audio = _audio_mode(args, args.file.parent)
        return asyncio.run(_run_one(settings, args.file, args.json, audio))
    finally:
        telemetry.shutdown_tracing()


if __name__ == "__main__":
    raise SystemExit(main())

"""The caller's lines as speech: 16 kHz 16-bit mono PCM, from shipped WAV files or espeak-ng.

A line's file is ``<voices dir>/<key>.wav`` where the key is a hash of the line and the
synthesis settings, so a changed line never plays an old recording. The WAV files of the
shipped audio scenarios are in the repository (made once with ``python -m
switchboard.simulation voices``), so the test suite needs no speech synthesiser; a new line
is spoken by espeak-ng when it is installed, and is an error naming the line's file when it
is not.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
import tempfile
import wave
from pathlib import Path

from livekit import rtc

from switchboard.simulation import scenario as scenarios

SAMPLE_RATE = 16_000
ESPEAK = "espeak-ng"
ESPEAK_VOICE = "en-us"
ESPEAK_WPM = 165
SYNTH_TIMEOUT_S = 30.0
VOICES = "voices"
"""The folder of the caller lines' WAV files, next to the scenario files."""


class VoiceMissing(RuntimeError):
    """A line has no shipped WAV file and espeak-ng is not installed."""


def key(text: str) -> str:
    """The file name (without ``.wav``) of a line's speech."""
    recipe = f"{ESPEAK}|{ESPEAK_VOICE}|{ESPEAK_WPM}|{SAMPLE_RATE}|{text.strip()}"
    return hashlib.sha256(recipe.encode()).hexdigest()[:16]


def espeak_available() -> bool:
    return shutil.which(ESPEAK) is not None


class Voices:
    """Speech for lines: the shipped file if there is one, else espeak-ng."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path(self, text: str) -> Path:
        return self.directory / f"{key(text)}.wav"

    def pcm(self, text: str) -> bytes:
        path = self.path(text)
        if path.exists():
            return read_pcm(path.read_bytes())
        if not espeak_available():
            raise VoiceMissing(
                f"No recording of a caller line ({path.name}) and {ESPEAK} is not installed: "
                "install it, or run `python -m switchboard.simulation voices` where it is."
            )
        return synthesize(text)

    def ensure(self, text: str) -> bool:
        """Write the line's WAV file if it is missing; True when one was written."""
        path = self.path(text)
        if path.exists():
            return False
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(to_wav(synthesize(text)))
        return True


def synthesize(text: str) -> bytes:
    """``text`` spoken by espeak-ng, as 16 kHz 16-bit mono PCM."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "line.wav"
        subprocess.run(
            [ESPEAK, "-v", ESPEAK_VOICE, "-s", str(ESPEAK_WPM), "-w", str(out), "--", text],
            check=True,
            capture_output=True,
            timeout=SYNTH_TIMEOUT_S,
        )
        return read_pcm(out.read_bytes())


def read_pcm(data: bytes) -> bytes:
    """The samples of a 16-bit mono WAV file, resampled to 16 kHz."""
    with wave.open(io.BytesIO(data), "rb") as reader:
        if reader.getsampwidth() != 2 or reader.getnchannels() != 1:
            raise ValueError("caller speech must be 16-bit mono WAV")
        rate = reader.getframerate()
        pcm = reader.readframes(reader.getnframes())
    if rate == SAMPLE_RATE:
        return pcm
    resampler = rtc.AudioResampler(rate, SAMPLE_RATE, num_channels=1)
    frame = rtc.AudioFrame(
        data=pcm, sample_rate=rate, num_channels=1, samples_per_channel=len(pcm) // 2
    )
    frames = [*resampler.push(frame), *resampler.flush()]
    return b"".join(bytes(f.data.cast("B")) for f in frames)


def to_wav(pcm: bytes) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(SAMPLE_RATE)
        writer.writeframes(pcm)
    return out.getvalue()


def write_voices(scenarios_dir: Path) -> int:
    """``python -m switchboard.simulation voices``: a WAV file for every caller line of the
    scenarios in ``scenarios_dir`` that has none; the exit code."""
    if not espeak_available():
        print(f"{ESPEAK} is not installed.")
        return 2
    voices = Voices(scenarios_dir / VOICES)
    written = 0
    for path in scenarios.discover(scenarios_dir):
        loaded = scenarios.load(path)
        lines = [*loaded.lines, *(loaded.hold.says if loaded.hold else [])]
        written += sum(voices.ensure(line) for line in lines)
    print(f"{written} WAV file(s) written to {voices.directory}.")
    return 0

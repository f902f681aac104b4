"""Audio the scripted server renders and reads: 24 kHz 16-bit mono PCM, in WAV or raw.

The speech endpoint renders a sine tone (or silence) of a requested length, as OpenAI's
``pcm`` (raw little-endian samples, 24 kHz, mono) or ``wav``; the transcription endpoint
reads the WAV header of an upload so policies can tell utterances apart by length.
"""

from __future__ import annotations

import io
import math
import struct
import wave
from dataclasses import dataclass

SAMPLE_RATE = 24_000
SAMPLE_WIDTH = 2  # bytes: 16-bit
CHANNELS = 1


def tone(seconds: float, *, hz: float = 440.0, amplitude: float = 0.2) -> bytes:
    """``seconds`` of a sine tone as 16-bit little-endian mono PCM at 24 kHz (0 Hz: silence)."""
    count = round(seconds * SAMPLE_RATE)
    if hz <= 0 or amplitude <= 0:
        return bytes(count * SAMPLE_WIDTH)
    peak = amplitude * 32767
    step = 2 * math.pi * hz / SAMPLE_RATE
    samples = (round(peak * math.sin(step * i)) for i in range(count))
    return struct.pack(f"<{count}h", *samples)


def wav(pcm: bytes, *, sample_rate: int = SAMPLE_RATE) -> bytes:
    """``pcm`` (16-bit mono) wrapped in a WAV container with exact sizes."""
    out = io.BytesIO()
    with wave.open(out, "wb") as writer:
        writer.setnchannels(CHANNELS)
        writer.setsampwidth(SAMPLE_WIDTH)
        writer.setframerate(sample_rate)
        writer.writeframes(pcm)
    return out.getvalue()


@dataclass(frozen=True, slots=True)
class WavInfo:
    sample_rate: int
    channels: int
    frames: int

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate if self.sample_rate else 0.0


def read_wav_info(data: bytes) -> WavInfo | None:
    """The format and length of a WAV file, or None when ``data`` is not one."""
    try:
        with wave.open(io.BytesIO(data), "rb") as reader:
            return WavInfo(
                sample_rate=reader.getframerate(),
                channels=reader.getnchannels(),
                frames=reader.getnframes(),
            )
    except (wave.Error, EOFError):
        return None


def pieces(data: bytes, size: int) -> list[bytes]:
    """``data`` in consecutive slices of ``size`` bytes (the last may be shorter)."""
    return [data[i : i + size] for i in range(0, len(data), size)] or [b""]

"""A transcription policy that hears scripted speech: the line whose audio was uploaded.

A caller simulation registers each utterance it is about to say (its 16-bit PCM and its
line); ``/v1/audio/transcriptions`` then answers an upload with the line whose audio is in
it. Short fingerprints of the utterance (20 ms windows of its loud parts) are looked for in
the uploaded samples, so a match survives the voice activity detector cutting an utterance
into several uploads, padding it with silence or joining it to the next one: the first
upload holding an utterance gets its line, later pieces of the same utterance get nothing
(as a real recogniser transcribes each word once). Audio with no registered utterance in it
(silence, an echo) is transcribed as empty text and counted in ``unmatched``.
"""

from __future__ import annotations

import io
import wave
from dataclasses import dataclass, field

from switchboard.testing.openai_server.answers import Transcript
from switchboard.testing.openai_server.requests import TranscriptionRequest

WINDOW_SAMPLES = 320
"""20 ms at 16 kHz: long enough to be unique in speech, short enough to fit in any piece."""
STRIDE_SAMPLES = 1600
"""One fingerprint every 0.1 s of speech."""
LOUD = 500
"""Mean absolute amplitude below which a window is (near) silence and would match anywhere."""


@dataclass(slots=True)
class Heard:
    """One registered utterance and what the recogniser made of it."""

    number: int
    text: str
    fingerprints: tuple[bytes, ...] = field(repr=False)
    transcribed_by: list[int] = field(default_factory=list)
    """The numbers of the transcription requests whose upload held some of it."""

    @property
    def transcribed(self) -> bool:
        return bool(self.transcribed_by)


def fingerprints(pcm: bytes) -> tuple[bytes, ...]:
    """The loud 20 ms windows of 16-bit mono ``pcm``, one per ``STRIDE_SAMPLES``."""
    width = WINDOW_SAMPLES * 2
    found: list[bytes] = []
    for start in range(0, len(pcm) - width + 1, STRIDE_SAMPLES * 2):
        window = pcm[start : start + width]
        samples = memoryview(window).cast("h")
        if sum(abs(s) for s in samples) / WINDOW_SAMPLES >= LOUD:
            found.append(bytes(window))
    return tuple(found)


def wav_samples(data: bytes) -> bytes | None:
    """The 16-bit mono samples of a WAV upload, or None for anything else."""
    try:
        with wave.open(io.BytesIO(data), "rb") as reader:
            if reader.getsampwidth() != 2 or reader.getnchannels() != 1:
                return None
            return reader.readframes(reader.getnframes())
    except (wave.Error, EOFError):
        return None


class ScriptedSpeech:
    """``server.transcription_policy``: answers each upload with the lines said in it."""

    def __init__(self) -> None:
        self.utterances: list[Heard] = []
        self.unmatched: list[int] = []
        """Requests whose upload held no registered utterance."""

    def register(self, pcm: bytes, text: str) -> Heard:
        """An utterance about to be said: 16-bit mono PCM at the rate the input sends."""
        prints = fingerprints(pcm)
        if not prints:
            raise ValueError("an utterance with no audible part cannot be recognised")
        heard = Heard(number=len(self.utterances) + 1, text=text, fingerprints=prints)
        self.utterances.append(heard)
        return heard

    def __call__(self, request: TranscriptionRequest) -> Transcript:
        samples = wav_samples(request.audio)
        said = [] if samples is None else [u for u in self.utterances if _in(u, samples)]
        if not said:
            self.unmatched.append(request.number)
        first_time = [u for u in said if not u.transcribed]
        for utterance in said:
            utterance.transcribed_by.append(request.number)
        return Transcript(text=" ".join(u.text for u in first_time))


def _in(utterance: Heard, samples: bytes) -> bool:
    # Aligned to whole samples: a window found at an odd byte offset is a coincidence.
    for fingerprint in utterance.fingerprints:
        at = samples.find(fingerprint)
        while at >= 0:
            if at % 2 == 0:
                return True
            at = samples.find(fingerprint, at + 1)
    return False

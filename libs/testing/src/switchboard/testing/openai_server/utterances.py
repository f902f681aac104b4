"""A transcription policy that hears scripted speech: the line whose audio was uploaded.

A caller simulation registers each utterance it is about to say (its 16-bit PCM and its
line); ``/v1/audio/transcriptions`` then answers an upload with the line whose audio is in
it. Short fingerprints of the utterance (20 ms windows of its loud parts, one every 0.1 s)
are looked for in the uploaded samples, so a match survives the voice activity detector
padding an utterance with silence, cutting it into several uploads or joining it to the
next one. Like a recogniser that needs most of the words, a line is returned once
``HEARD_ENOUGH`` of its fingerprints have been uploaded (in one upload or over several),
and only once; an utterance whose audio was mostly replaced by silence (the session drops
what the caller says over an uninterruptible line, or during echo-cancellation warm-up) is
never returned. Audio with no registered utterance in it is transcribed as empty text and
counted in ``unmatched``.
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
HEARD_ENOUGH = 0.75
"""The share of an utterance's fingerprints that must have been uploaded for its line."""


@dataclass(slots=True)
class Heard:
    """One registered utterance and what the recogniser made of it."""

    number: int
    text: str
    fingerprints: tuple[bytes, ...] = field(repr=False)
    uploaded_by: list[int] = field(default_factory=list)
    """The numbers of the transcription requests whose upload held some of it."""
    seen: set[int] = field(default_factory=set, repr=False)
    """Which of its fingerprints were uploaded."""
    transcribed_by: int | None = None
    """The request that was answered with its line."""

    @property
    def transcribed(self) -> bool:
        return self.transcribed_by is not None

    @property
    def heard_share(self) -> float:
        return len(self.seen) / len(self.fingerprints)


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
            # Nothing loud enough to find again: such audio is never recognised.
            raise ValueError("an utterance with no audible part cannot be recognised")
        heard = Heard(number=len(self.utterances) + 1, text=text, fingerprints=prints)
        self.utterances.append(heard)
        return heard

    def __call__(self, request: TranscriptionRequest) -> Transcript:
        samples = wav_samples(request.audio)
        lines: list[str] = []
        for utterance in self.utterances if samples is not None else []:
            found = _found(utterance, samples or b"")
            if not found:
                continue
            utterance.uploaded_by.append(request.number)
            utterance.seen |= found
            if not utterance.transcribed and utterance.heard_share >= HEARD_ENOUGH:
                utterance.transcribed_by = request.number
                lines.append(utterance.text)
        if samples is None or not any(request.number in u.uploaded_by for u in self.utterances):
            self.unmatched.append(request.number)
        return Transcript(text=" ".join(line for line in lines if line))


def _found(utterance: Heard, samples: bytes) -> set[int]:
    """Which of the utterance's fingerprints are in ``samples``, at whole-sample offsets (a
    window found at an odd byte offset is a coincidence)."""
    found: set[int] = set()
    for index, fingerprint in enumerate(utterance.fingerprints):
        at = samples.find(fingerprint)
        while at >= 0 and at % 2:
            at = samples.find(fingerprint, at + 1)
        if at >= 0:
            found.add(index)
    return found

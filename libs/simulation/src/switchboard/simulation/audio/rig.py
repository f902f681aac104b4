"""What an audio-mode call runs on: the speech services, the caller's microphone and speaker,
and the session's speech models, with the facts the report needs.

The speech services are the scripted OpenAI-compatible server on 127.0.0.1: its
transcription endpoint answers each upload with the caller's line whose audio is in it
(``ScriptedSpeech``), its speech endpoint renders a tone as long as the text takes to say.
The models are the real plugin classes pointed at it (``openai.STT``, ``openai.TTS`` with
raw PCM) and the real Silero VAD. The session's output goes through LiveKit's transcript
synchroniser, as in a room, so an interrupted reply keeps only what was played.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
from livekit.agents import AgentSession, llm, vad
from livekit.agents.voice.events import ConversationItemAddedEvent
from livekit.agents.voice.transcription.synchronizer import TranscriptSynchronizer
from livekit.plugins import openai, silero

from switchboard.simulation import report as reports
from switchboard.simulation.audio.clock import AudioClock
from switchboard.simulation.audio.mic import CallerMic, Said
from switchboard.simulation.audio.speaker import CallerSpeaker, HeardText, Played, SpokenText
from switchboard.simulation.audio.voices import Voices
from switchboard.testing.openai_server import OpenAIServer, speech_by_length
from switchboard.testing.openai_server.utterances import Heard, ScriptedSpeech
from switchboard.voice.ports import Voices as AgentVoices
from switchboard.voice.providers import OPENAI_MANAGER_VOICE, OPENAI_VOICE
from switchboard.voice.settings import VoiceSettings

DEFAULT_SPEED = 4.0
SECONDS_PER_CHAR = 0.06
"""The synthesiser stand-in's speaking rate: a reply lasts as long as its text takes to say."""
API_KEY = "simulated"
_vad: vad.VAD | None = None


def voice_activity() -> vad.VAD:
    """Silero, loaded once per process (as the worker's prewarm does)."""
    global _vad
    if _vad is None:
        _vad = silero.VAD.load()
    return _vad


@dataclass(frozen=True, slots=True)
class AudioMode:
    """How to play a scenario in audio mode."""

    voices_dir: Path
    """Shipped WAV files of caller lines (espeak-ng speaks lines that have none)."""
    speed: float = DEFAULT_SPEED
    """Audio seconds per wall-clock second (1: real time, to watch)."""


def scaled(settings: VoiceSettings, speed: float) -> VoiceSettings:
    """The settings with their wall-clock durations shortened by the speed-up: voice
    activity is measured in audio, everything the session times with the clock is not."""
    return msgspec.structs.replace(
        settings,
        endpointing_min_delay_s=settings.endpointing_min_delay_s / speed,
        endpointing_max_delay_s=settings.endpointing_max_delay_s / speed,
        false_interruption_timeout_s=settings.false_interruption_timeout_s / speed,
        aec_warmup_s=settings.aec_warmup_s / speed,
        hold_reminder_s=settings.hold_reminder_s / speed,
    )


@dataclass(slots=True)
class Reply:
    """One agent reply: the history's text (what was played) next to the audio facts."""

    agent: str
    said: str
    full: str | None
    interrupted: bool
    at_s: float
    played: Played | None
    heard_over: list[Said] = field(default_factory=list)


class AudioRig:
    def __init__(self, mode: AudioMode, settings: VoiceSettings) -> None:
        self.mode = mode
        self.clock = AudioClock(mode.speed)
        self.voices = Voices(mode.voices_dir)
        self.recogniser = ScriptedSpeech()
        self.server = OpenAIServer(
            transcription_policy=self.recogniser,
            speech_policy=speech_by_length(SECONDS_PER_CHAR),
        )
        self.mic = CallerMic(self.clock)
        self.speaker = CallerSpeaker(self.clock)
        self.heard_text = HeardText()
        self.settings = settings
        self.replies: list[Reply] = []
        self.user_turns = 0
        self.heard: dict[int, Heard] = {}
        """The recogniser's record of each utterance, by its place in ``mic.said``."""
        self._full_texts: SpokenText | None = None
        self._paired = 0
        self._texts_paired = 0
        self._agent = "agent"
        self._turn_added = asyncio.Event()
        self._models: list[openai.STT | openai.TTS] = []

    async def start(self) -> AudioRig:
        await self.server.start()
        return self

    async def close(self) -> None:
        self.mic.close()
        await self.speaker.aclose()
        for model in self._models:
            await model.aclose()
        await self.server.stop()

    def models(self) -> tuple[openai.STT, openai.TTS, AgentVoices]:
        base = self.server.base_url
        stt = openai.STT(
            base_url=base, api_key=API_KEY, model=self.settings.openai_stt_model, language="en"
        )
        tts = openai.TTS(base_url=base, api_key=API_KEY, voice=OPENAI_VOICE, response_format="pcm")
        manager = openai.TTS(
            base_url=base, api_key=API_KEY, voice=OPENAI_MANAGER_VOICE, response_format="pcm"
        )
        self._models = [stt, tts, manager]
        return stt, tts, AgentVoices(manager=manager)

    def attach(self, session: AgentSession[Any]) -> None:
        """The caller's microphone and speaker, before the session starts."""
        sync = TranscriptSynchronizer(
            next_in_chain_audio=self.speaker,
            next_in_chain_text=self.heard_text,
            speed=self.mode.speed,
        )
        self._full_texts = SpokenText(sync.text_output)
        session.input.audio = self.mic
        session.output.audio = sync.audio_output
        session.output.transcription = self._full_texts
        session.on("conversation_item_added", self._on_item)

    # --- the caller speaking ----------------------------------------------------------

    def say(self, text: str, kind: str) -> Said:
        pcm = self.voices.pcm(text)
        said = self.mic.say(text, pcm, kind)
        # A backchannel ("mm-hmm") is a sound the recogniser returns no words for.
        words = "" if kind == "backchannel" else text
        self.heard[len(self.mic.said) - 1] = self.recogniser.register(pcm, words)
        return said

    def spoken_now(self) -> str:
        """The text of the reply being played now, as generated."""
        return self._full_texts.latest if self._full_texts is not None else ""

    def transcribed(self, said: Said) -> bool:
        return self.heard[self.mic.said.index(said)].transcribed

    # --- what was played --------------------------------------------------------------

    def _on_item(self, ev: ConversationItemAddedEvent) -> None:
        item = ev.item
        if isinstance(item, llm.AgentHandoff):
            self._agent = item.new_agent_id
            return
        if not isinstance(item, llm.ChatMessage):
            return
        if item.role == "user":
            self.user_turns += 1
            self._turn_added.set()
            self._turn_added = asyncio.Event()
            return
        if item.role != "assistant":
            return
        # The session adds a reply once its playback finished: the segment that ended
        # last (if it had audio at all) and the text flushed last are its own.
        done = [s for s in self.speaker.segments[self._paired :] if s.done]
        played = done[-1] if done else None
        if played is not None:
            self._paired = played.number
        texts = self._full_texts.replies if self._full_texts else []
        full = texts[-1] if len(texts) > self._texts_paired else None
        self._texts_paired = len(texts)
        self.replies.append(
            Reply(
                agent=self._agent,
                said=(item.text_content or "").strip(),
                full=full,
                interrupted=item.interrupted,
                at_s=round(self.clock.now(), 3),
                played=played,
                heard_over=[
                    s
                    for s in self.mic.said
                    if played is not None and _overlaps(s, played.started_s, played.ended_s)
                ],
            )
        )

    def never_turns(self, t0: float) -> list[tuple[str, float, str]]:
        """Caller lines the recogniser never returned: (text, seconds since ``t0`` on the
        loop's clock, why)."""
        out: list[tuple[str, float, str]] = []
        for index, said in enumerate(self.mic.said):
            if self.heard[index].transcribed:
                continue
            if said.kind == "backchannel":
                why = "backchannel"
            elif said.delivered_samples == 0:
                why = "input off"
            else:
                why = "dropped"
            out.append((said.text, self.clock.origin - t0 + self.clock.wall(said.start_s), why))
        return out

    def view(self) -> reports.AudioView:
        """The audio facts of the call, for the report."""
        replies = [
            reports.ReplyView(
                agent=r.agent,
                said=r.said,
                at_s=r.at_s,
                interrupted=r.interrupted,
                pushed_s=round(r.played.pushed_s, 3) if r.played else 0.0,
                played_s=round(r.played.played_s, 3) if r.played else 0.0,
                paused=len(r.played.pauses) if r.played else 0,
                resumed=r.played.resumed if r.played else False,
                full=r.full,
                talked_over_by=[s.text for s in r.heard_over],
            )
            for r in self.replies
        ]
        caller = [
            reports.CallerSpeechView(
                text=s.text,
                kind=s.kind,
                start_s=round(s.start_s, 3),
                end_s=round(s.end_s, 3),
                delivered_s=round(s.delivered_s, 3),
                transcribed=self.heard[i].transcribed,
            )
            for i, s in enumerate(self.mic.said)
        ]
        return reports.AudioView(
            speed=self.mode.speed,
            replies=replies,
            caller=caller,
            transcriptions=len(self.server.transcription_requests),
            syntheses=len(self.server.speech_requests),
        )

    async def wait_turn_after(self, count: int, wall_timeout: float) -> bool:
        """Wait until more than ``count`` caller turns were added; False at the bound."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wall_timeout
        while self.user_turns <= count:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            try:
                await asyncio.wait_for(self._turn_added.wait(), remaining)
            except TimeoutError:
                return False
        return True


def _overlaps(said: Said, start: float, end: float | None) -> bool:
    return said.start_s < (end if end is not None else float("inf")) and said.end_s > start

"""The models of a call, built in one place for the production worker and text mode.

LLM (``SB_BRAIN``): ``openai`` is OpenAI (primary model, then a smaller one; any
OpenAI-compatible server through ``OPENAI_BASE_URL``) with the rules brain in safe mode
last, which cannot fail, so consent and escalation keep working in a provider outage;
``rules`` is the rules brain alone (a machine with no model). STT: OpenAI streaming
transcription with Whisper behind it. TTS: ElevenLabs with OpenAI's TTS behind it; the
manager gets a different voice on both.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from livekit.agents import llm, stt, tts, vad
from livekit.agents.types import NOT_GIVEN
from livekit.plugins import elevenlabs, openai

from switchboard.voice.brain import RulesBrain
from switchboard.voice.settings import VoiceSettings

OPENAI_KEY = "OPENAI_API_KEY"
OPENAI_BASE_URL = "OPENAI_BASE_URL"
ELEVEN_KEY = "ELEVEN_API_KEY"
OPENAI_MANAGER_VOICE = "onyx"
OPENAI_VOICE = "alloy"


class ProviderError(RuntimeError):
    """A voice call needs speech models and no credentials for them are set."""


@dataclass(frozen=True, slots=True)
class Models:
    chat_model: llm.LLM[Any]
    recognizer: stt.STT[Any]
    voice: tts.TTS[Any]
    manager_voice: tts.TTS[Any]
    voice_activity: vad.VAD


def language_model(settings: VoiceSettings, env: Mapping[str, str]) -> llm.LLM[Any]:
    """The LLM ``SB_BRAIN`` names; raises ``ProviderError`` naming a missing variable."""
    if settings.brain == "rules":
        return RulesBrain()
    key = env.get(OPENAI_KEY)
    if not key:
        raise ProviderError(f"SB_BRAIN=openai needs {OPENAI_KEY}.")
    base_url = env.get(OPENAI_BASE_URL) or None
    models = dict.fromkeys((settings.openai_llm_model, settings.openai_fallback_llm_model))
    return llm.FallbackAdapter(
        [
            *(
                openai.LLM(model=name, api_key=key, base_url=base_url or NOT_GIVEN)
                for name in models
            ),
            RulesBrain(authority=False),
        ],
        attempt_timeout=settings.llm_attempt_timeout_s,
        max_retry_per_llm=settings.llm_retries,
        retry_interval=settings.llm_retry_interval_s,
        # A stream cut mid-answer must not drop the caller's turn: the next model answers
        # it in full (the caller may hear the start of the sentence again).
        retry_on_chunk_sent=True,
    )


def speech_models(
    settings: VoiceSettings, env: Mapping[str, str], voice_activity: vad.VAD
) -> tuple[stt.STT[Any], tts.TTS[Any], tts.TTS[Any]]:
    """STT, TTS and the manager's TTS; raises ``ProviderError`` naming the missing keys."""
    key = env.get(OPENAI_KEY)
    if not key:
        raise ProviderError(
            f"A voice call needs {OPENAI_KEY} for speech recognition and synthesis "
            f"({ELEVEN_KEY} adds ElevenLabs voices)."
        )
    eleven = env.get(ELEVEN_KEY) or None
    recognizer = stt.FallbackAdapter(
        [
            openai.STT(model=settings.openai_stt_model, api_key=key),
            openai.STT(model="whisper-1", api_key=key),
        ],
        vad=voice_activity,
    )
    return (
        recognizer,
        _voices(settings.elevenlabs_voice_id, OPENAI_VOICE, key, eleven),
        _voices(settings.elevenlabs_manager_voice_id, OPENAI_MANAGER_VOICE, key, eleven),
    )


def _voices(
    eleven_voice: str, openai_voice: str, openai_key: str, eleven_key: str | None
) -> tts.TTS[Any]:
    chain: list[tts.TTS[Any]] = []
    if eleven_key:
        chain.append(elevenlabs.TTS(voice_id=eleven_voice, api_key=eleven_key))
    chain.append(openai.TTS(voice=openai_voice, api_key=openai_key))
    return tts.FallbackAdapter(chain)


def build(settings: VoiceSettings, voice_activity: vad.VAD) -> Models:
    env = os.environ
    recognizer, voice, manager_voice = speech_models(settings, env, voice_activity)
    return Models(
        chat_model=language_model(settings, env),
        recognizer=recognizer,
        voice=voice,
        manager_voice=manager_voice,
        voice_activity=voice_activity,
    )

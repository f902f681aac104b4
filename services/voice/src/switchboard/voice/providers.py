"""Production models behind fallback adapters, from whatever credentials are present.

LLM: OpenAI (primary model, then a smaller one), then the rules brain, which cannot fail,
so consent and escalation keep working in a provider outage. With no OpenAI key the rules
brain is the LLM. STT: OpenAI streaming transcription with Whisper behind it. TTS:
ElevenLabs with OpenAI's TTS behind it; the manager gets a different voice on both.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from livekit.agents import llm, stt, tts, vad
from livekit.plugins import elevenlabs, openai

from switchboard.voice.brain import RulesBrain
from switchboard.voice.settings import VoiceSettings

OPENAI_KEY = "OPENAI_API_KEY"
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
    """OpenAI models with the rules brain as the last fallback, or the brain alone."""
    brain = RulesBrain()
    key = env.get(OPENAI_KEY)
    if not key:
        return brain
    return llm.FallbackAdapter(
        [
            openai.LLM(model=settings.openai_llm_model, api_key=key),
            openai.LLM(model=settings.openai_fallback_llm_model, api_key=key),
            brain,
        ],
        attempt_timeout=5.0,
        max_retry_per_llm=1,
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

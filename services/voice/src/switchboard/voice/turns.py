"""Turn-taking of a voice call, in one place: when the caller's turn ends, what happens when
they talk over the agent, and echo-cancellation warm-up.

The values are the voice settings' (``SB_ENDPOINTING_*``, ``SB_TURN_DETECTION``,
``SB_INTERRUPTION_MIN_SPEECH_S``, ``SB_FALSE_INTERRUPTION_TIMEOUT_S``, ``SB_AEC_WARMUP_S``);
the audio scenarios (``scenarios/audio``, played with real voice activity detection,
speech-to-text and text-to-speech) are what they were chosen from:

- Interruptions are decided by voice activity (``vad``): LiveKit's adaptive detector is a
  hosted model, and a self-hosted worker has none. The caller's speech pauses the agent
  after ``SB_INTERRUPTION_MIN_SPEECH_S``; the agent stops (and the unplayed rest of the
  reply is cut from the history the model sees) only when the recogniser returns words.
  A sound that yields no words ("mm-hmm" heard as nothing, a cough) resumes the reply after
  ``SB_FALSE_INTERRUPTION_TIMEOUT_S``.
- Lines spoken with interruptions off (the transfer announcement, everything said on hold)
  play out; what the caller says over them is dropped, not queued as a turn.
- Echo-cancellation warm-up is off by default (``SB_AEC_WARMUP_S`` 0). Callers come in
  over SIP, where the phone and the carrier cancel echo before the audio reaches the room,
  and LiveKit's 3 s default would make the first 3 s of every reply uninterruptible and
  replace the caller's words in them with silence: a caller asking for a person over the
  greeting would not be heard at all (``test_audio_scenarios.py`` shows both).
"""

from __future__ import annotations

from livekit.agents import inference
from livekit.agents.voice.turn import TurnDetectionMode, TurnHandlingOptions

from switchboard.voice.settings import VoiceSettings


def turn_handling(settings: VoiceSettings) -> TurnHandlingOptions:
    """The session's turn handling for calls with audio."""
    detection: TurnDetectionMode = (
        "vad" if settings.turn_detection == "vad" else inference.TurnDetector()
    )
    return TurnHandlingOptions(
        turn_detection=detection,
        endpointing={
            "mode": "fixed",
            "min_delay": settings.endpointing_min_delay_s,
            "max_delay": settings.endpointing_max_delay_s,
        },
        interruption={
            "enabled": True,
            "mode": "vad",
            "min_duration": settings.interruption_min_speech_s,
            "discard_audio_if_uninterruptible": True,
            "resume_false_interruption": True,
            "false_interruption_timeout": settings.false_interruption_timeout_s,
        },
    )


def aec_warmup(settings: VoiceSettings) -> float | None:
    """The session's echo-cancellation warm-up: None (off) unless configured."""
    return settings.aec_warmup_s or None

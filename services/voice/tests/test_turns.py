"""Turn-taking settings reach the session of a call with audio, from one place."""

from __future__ import annotations

import msgspec
from livekit.plugins import silero

from switchboard.simulation.consult import ScriptedConsultRooms
from switchboard.simulation.transcript import Transcript
from switchboard.voice import turns
from switchboard.voice.brain import RulesBrain
from switchboard.voice.recording import TimelineRecorder
from switchboard.voice.settings import VoiceSettings
from switchboard.voice.state import CallInfo
from switchboard.voice.wiring import Bus, new_call, new_session


def test_the_settings_make_the_turn_handling() -> None:
    settings = VoiceSettings(
        turn_detection="vad",
        endpointing_min_delay_s=0.4,
        endpointing_max_delay_s=2.5,
        interruption_min_speech_s=0.6,
        false_interruption_timeout_s=1.5,
    )
    handling = turns.turn_handling(settings)
    assert handling["turn_detection"] == "vad"
    assert handling["endpointing"] == {"mode": "fixed", "min_delay": 0.4, "max_delay": 2.5}
    interruption = handling["interruption"]
    assert interruption["mode"] == "vad"
    assert interruption["min_duration"] == 0.6
    assert interruption["false_interruption_timeout"] == 1.5
    assert interruption["resume_false_interruption"] is True
    assert interruption["discard_audio_if_uninterruptible"] is True
    # The end-of-turn model by default; echo-cancellation warm-up off unless configured.
    assert turns.turn_handling(VoiceSettings())["turn_detection"] != "vad"
    assert turns.aec_warmup(VoiceSettings()) is None
    assert turns.aec_warmup(VoiceSettings(aec_warmup_s=3.0)) == 3.0


async def test_a_session_with_voice_activity_takes_them(bus: Bus, settings: VoiceSettings) -> None:
    configured = msgspec.structs.replace(
        settings, turn_detection="vad", false_interruption_timeout_s=1.25, aec_warmup_s=0.0
    )
    info = CallInfo(call_id="turns-1", room="room-turns-1", caller_identity="caller-turns-1")
    model = RulesBrain()
    call = new_call(
        bus,
        configured,
        info,
        TimelineRecorder(),
        consult=ScriptedConsultRooms(model, Transcript(), ()),
    )
    session = new_session(call, model, voice_activity=silero.VAD.load())
    try:
        options = session.options
        assert options.interruption["false_interruption_timeout"] == 1.25
        assert options.interruption["mode"] == "vad"
        assert options.endpointing["min_delay"] == configured.endpointing_min_delay_s
        assert options.aec_warmup_duration is None
    finally:
        await session.aclose()
        await call.finish()

"""The simulated caller's microphone and speaker, on a clock the test moves by hand."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from livekit import rtc

from switchboard.simulation import scenario as scenarios
from switchboard.simulation.audio.clock import AudioClock
from switchboard.simulation.audio.mic import FRAME_SAMPLES, CallerMic
from switchboard.simulation.audio.speaker import CallerSpeaker
from switchboard.simulation.audio.voices import SAMPLE_RATE

BOUND_S = 5.0
TICK_S = 0.01


class HandClock(AudioClock):
    """Audio time that moves only when the test says so."""

    def __init__(self) -> None:
        super().__init__(speed=1.0)
        self.t = 0.0
        self._moved = asyncio.Event()

    def now(self) -> float:
        return self.t

    def wall(self, audio_seconds: float) -> float:
        return TICK_S  # the player looks at this clock again soon, whatever is left

    def move_to(self, t: float) -> None:
        self.t = t
        self._moved.set()
        self._moved = asyncio.Event()

    async def sleep_until(self, audio_t: float) -> None:
        while self.t < audio_t:
            await asyncio.wait_for(self._moved.wait(), BOUND_S)


def tone_frame(seconds: float) -> rtc.AudioFrame:
    samples = round(seconds * 24_000)
    return rtc.AudioFrame(
        data=b"\x10\x00" * samples, sample_rate=24_000, num_channels=1, samples_per_channel=samples
    )


async def test_the_speaker_pauses_resumes_and_records_what_a_cut_left_unplayed() -> None:
    clock = HandClock()
    speaker = CallerSpeaker(clock)
    started = speaker.changed
    await speaker.capture_frame(tone_frame(3.0))
    await asyncio.wait_for(started.wait(), BOUND_S)
    clock.move_to(1.0)
    assert speaker.position() == 1.0
    speaker.pause()
    clock.move_to(2.0)
    assert speaker.position() == 1.0  # paused: the clock moved, the audio did not
    speaker.resume()
    clock.move_to(2.5)
    assert speaker.position() == 1.5
    speaker.flush()
    speaker.clear_buffer()
    finished = await asyncio.wait_for(speaker.wait_for_playout(), BOUND_S)
    assert finished.interrupted
    assert finished.playback_position == 1.5
    [segment] = speaker.segments
    assert (segment.pushed_s, segment.played_s, segment.interrupted) == (3.0, 1.5, True)
    assert [(p.at_s, p.resumed) for p in segment.pauses] == [(1.0, True)]
    assert speaker.idle


async def test_the_speaker_plays_a_segment_to_its_end_on_the_clock() -> None:
    clock = HandClock()
    speaker = CallerSpeaker(clock)
    started = speaker.changed
    await speaker.capture_frame(tone_frame(0.5))
    await speaker.capture_frame(tone_frame(0.5))
    speaker.flush()
    await asyncio.wait_for(started.wait(), BOUND_S)  # playing from audio time 0
    clock.move_to(5.0)
    finished = await asyncio.wait_for(speaker.wait_for_playout(), BOUND_S)
    assert not finished.interrupted
    assert finished.playback_position == 1.0
    assert speaker.segments[0].played_s == speaker.segments[0].pushed_s == 1.0


async def test_the_microphone_loses_what_is_said_while_the_input_is_off() -> None:
    clock = HandClock()
    mic = CallerMic(clock)
    loud = b"\x00\x10" * SAMPLE_RATE  # one second
    first = mic.say("before", loud)
    clock.move_to(FRAME_SAMPLES / SAMPLE_RATE)
    frame = await asyncio.wait_for(mic.__anext__(), BOUND_S)
    assert bytes(frame.data.cast("B")) == loud[: FRAME_SAMPLES * 2]
    assert first.delivered_samples == FRAME_SAMPLES
    mic.on_detached()  # the caller goes on hold
    clock.move_to(1.0)
    held = mic.say("on hold", loud)
    clock.move_to(2.5)
    mic.on_attached()  # back: the session hears the present, not what it missed
    clock.move_to(2.5 + FRAME_SAMPLES / SAMPLE_RATE)
    frame = await asyncio.wait_for(mic.__anext__(), BOUND_S)
    assert bytes(frame.data.cast("B")) == bytes(FRAME_SAMPLES * 2)  # silence
    assert held.delivered_samples == 0
    assert first.delivered_samples == FRAME_SAMPLES


def test_a_turn_with_two_moments_is_refused_with_its_file_name(tmp_path: Path) -> None:
    bad = tmp_path / "two_moments.toml"
    bad.write_text(
        'name = "x"\ncall_id = "x"\n'
        'turns = [{ says = "Hi.", after_agent_says = "hello", at_event = "call.started" }]\n'
    )
    with pytest.raises(scenarios.ScenarioError, match=r"two_moments\.toml.*not both"):
        scenarios.load(bad)
    bad.write_text('name = "x"\ncall_id = "x"\nturns = [{ says = "Hi.", delay_s = -1 }]\n')
    with pytest.raises(scenarios.ScenarioError, match="delay_s"):
        scenarios.load(bad)
    good = tmp_path / "timed.toml"
    good.write_text(
        'name = "x"\ncall_id = "x"\n'
        'turns = ["Yes.", { says = "Mm-hmm.", after_agent_says = "", backchannel = true }]\n'
    )
    loaded = scenarios.load(good)
    assert loaded.lines == ["Yes.", "Mm-hmm."]  # text mode plays timed turns as plain ones

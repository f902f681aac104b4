"""The scripted OpenAI server's audio endpoints, through livekit's ``openai.STT``/``openai.TTS``
and the raw openai client."""

from __future__ import annotations

import io
import random
import struct
import wave
from collections.abc import AsyncIterator
from typing import Literal

import httpx2
import openai as openai_client
import pytest
from livekit import rtc
from livekit.agents import APIConnectionError, APIConnectOptions, APIStatusError
from livekit.plugins import openai

from switchboard.testing.openai_server import (
    CutStream,
    Delay,
    HttpError,
    OpenAIServer,
    Script,
    Speech,
    SpeechRequest,
    Transcript,
)
from switchboard.testing.openai_server.audio import SAMPLE_RATE, tone, wav
from switchboard.testing.openai_server.utterances import ScriptedSpeech

NO_RETRY = APIConnectOptions(max_retry=0, retry_interval=0, timeout=5.0)


def frame(seconds: float) -> rtc.AudioFrame:
    pcm = tone(seconds)
    return rtc.AudioFrame(
        data=pcm, sample_rate=SAMPLE_RATE, num_channels=1, samples_per_channel=len(pcm) // 2
    )


@pytest.fixture
def server(openai_server: OpenAIServer) -> OpenAIServer:
    """The plugin's server: started, checked at teardown, OPENAI_BASE_URL pointing at it."""
    return openai_server


@pytest.fixture
async def client(server: OpenAIServer) -> AsyncIterator[openai_client.AsyncOpenAI]:
    raw = openai_client.AsyncOpenAI(base_url=server.base_url, api_key="test", max_retries=0)
    try:
        yield raw
    finally:
        await raw.close()


async def synthesize(tts: openai.TTS, text: str) -> list[rtc.AudioFrame]:
    return [event.frame async for event in tts.synthesize(text, conn_options=NO_RETRY)]


# --- transcription ------------------------------------------------------------------------


async def test_the_stt_plugin_gets_the_policy_text_for_its_upload(server: OpenAIServer) -> None:
    server.transcription_policy = lambda request: (
        "a long sentence" if (request.duration or 0) > 0.5 else "short"
    )
    stt = openai.STT(base_url=server.base_url, api_key="test", language="en")
    try:
        long = await stt.recognize(buffer=frame(0.8), conn_options=NO_RETRY)
        short = await stt.recognize(buffer=frame(0.2), conn_options=NO_RETRY)
    finally:
        await stt.aclose()
    assert [long.alternatives[0].text, short.alternatives[0].text] == ["a long sentence", "short"]
    first = await server.transcription_requests.wait_for(1)
    assert first.model == "gpt-4o-mini-transcribe"
    assert (first.filename, first.content_type) == ("file.wav", "audio/wav")
    assert first.response_format == "json"
    assert first.language == "en"
    assert first.sample_rate == SAMPLE_RATE
    assert first.duration == pytest.approx(0.8)


async def test_whisper_gets_verbose_json_with_the_language(server: OpenAIServer) -> None:
    server.transcription_policy = Script([Transcript("bonjour", language="french")])
    stt = openai.STT(base_url=server.base_url, api_key="test", model="whisper-1")
    try:
        event = await stt.recognize(buffer=frame(0.3), conn_options=NO_RETRY)
    finally:
        await stt.aclose()
    assert event.alternatives[0].text == "bonjour"
    assert event.alternatives[0].language == "fr"
    assert server.transcription_requests[0].response_format == "verbose_json"


@pytest.mark.parametrize(
    ("response_format", "expected"),
    [
        ("text", "hello there\n"),
        ("srt", "1\n00:00:00,000 --> 00:00:00,500\nhello there\n\n"),
        ("vtt", "WEBVTT\n\n00:00:00.000 --> 00:00:00.500\nhello there\n\n"),
    ],
)
async def test_text_transcription_formats(
    server: OpenAIServer,
    client: openai_client.AsyncOpenAI,
    response_format: Literal["text", "srt", "vtt"],
    expected: str,
) -> None:
    server.transcription_policy = Script(["hello there"])
    wav_bytes = rtc.combine_audio_frames([frame(0.5)]).to_wav_bytes()
    text = await client.audio.transcriptions.create(
        file=("speech.wav", wav_bytes, "audio/wav"),
        model="whisper-1",
        response_format=response_format,
    )
    assert text == expected


async def test_a_transcription_outage_and_a_timeout(
    server: OpenAIServer, client: openai_client.AsyncOpenAI
) -> None:
    server.transcription_policy = Script([Delay(60), "after the outage"])
    wav_bytes = rtc.combine_audio_frames([frame(0.2)]).to_wav_bytes()
    upload = ("speech.wav", wav_bytes, "audio/wav")
    with pytest.raises(openai_client.APITimeoutError):
        await client.audio.transcriptions.create(
            file=upload, model="whisper-1", timeout=httpx2.Timeout(0.3)
        )
    with (
        server.faults.outage(HttpError.unavailable(), endpoints={"transcription"}),
        pytest.raises(openai_client.InternalServerError) as caught,
    ):
        await client.audio.transcriptions.create(file=upload, model="whisper-1")
    assert caught.value.status_code == 503
    result = await client.audio.transcriptions.create(file=upload, model="whisper-1")
    assert result.text == "after the outage"


# --- speech -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "response_format", "stream_format"),
    [
        ("gpt-4o-mini-tts", "pcm", "sse"),
        ("gpt-4o-mini-tts", "wav", "sse"),
        ("tts-1", "pcm", "audio"),
        ("tts-1", "wav", "audio"),
    ],
)
async def test_the_tts_plugin_plays_audio_of_the_policy_length(
    server: OpenAIServer, model: str, response_format: str, stream_format: str
) -> None:
    server.speech_policy = lambda request: Speech(seconds=0.5)
    tts = openai.TTS(
        base_url=server.base_url, api_key="test", model=model, response_format=response_format
    )
    try:
        frames = await synthesize(tts, "Your order ships tomorrow.")
    finally:
        await tts.aclose()
    played = rtc.combine_audio_frames(frames)
    assert played.sample_rate == SAMPLE_RATE
    assert played.num_channels == 1
    # The emitter may pad its last 10 ms frame.
    assert played.duration == pytest.approx(0.5, abs=0.011)
    # A tone at the default amplitude (0.2 of full scale), not silence.
    assert max(played.data) == pytest.approx(0.2 * 32767, abs=2)
    request = server.speech_requests[0]
    assert (request.input, request.voice) == ("Your order ships tomorrow.", "ash")
    assert (request.response_format, request.stream_format) == (response_format, stream_format)


async def test_raw_speech_is_24khz_16bit_mono_of_the_default_length(
    server: OpenAIServer, client: openai_client.AsyncOpenAI
) -> None:
    text = "Twenty characters!!"
    pcm = await client.audio.speech.create(
        input=text, model="tts-1", voice="alloy", response_format="pcm", speed=2.0
    )
    # The default policy: 0.06 s a character at least 0.3 s, divided by the speed.
    assert len(pcm.content) == round(len(text) * 0.06 / 2.0 * SAMPLE_RATE) * 2
    wav_response = await client.audio.speech.create(
        input=text, model="tts-1", voice="alloy", response_format="wav"
    )
    with wave.open(io.BytesIO(wav_response.content)) as reader:
        assert (reader.getframerate(), reader.getnchannels(), reader.getsampwidth()) == (
            SAMPLE_RATE,
            1,
            2,
        )
        assert reader.getnframes() == round(len(text) * 0.06 * SAMPLE_RATE)
    assert wav_response.response.headers["content-type"] == "audio/wav"


async def test_the_plugin_default_mp3_is_refused_with_a_hint(server: OpenAIServer) -> None:
    tts = openai.TTS(base_url=server.base_url, api_key="test")
    try:
        with pytest.raises(APIStatusError, match="response_format='pcm'") as caught:
            await synthesize(tts, "hello")
    finally:
        await tts.aclose()
    assert caught.value.status_code == 400
    assert len(server.speech_requests) == 0
    assert [r.param for r in server.rejections] == ["response_format"]
    server.rejections.clear()


async def test_speech_cut_mid_stream_is_a_connection_error(server: OpenAIServer) -> None:
    def cut_the_first(request: SpeechRequest) -> Speech | CutStream:
        return CutStream(after_chunks=2) if request.number == 1 else Speech(seconds=0.3)

    server.speech_policy = cut_the_first
    tts = openai.TTS(base_url=server.base_url, api_key="test", response_format="pcm")
    try:
        with pytest.raises(APIConnectionError):
            await synthesize(tts, "this is cut")
        frames = await synthesize(tts, "this is whole")
    finally:
        await tts.aclose()
    assert rtc.combine_audio_frames(frames).duration == pytest.approx(0.3, abs=0.011)


# --- scripted speech: the line whose audio was uploaded ---------------------------------


def _speech(seconds: float, seed: int) -> bytes:
    """Loud noise standing in for speech: every 20 ms window of it is unique."""
    rng = random.Random(seed)
    count = round(seconds * 16_000)
    return struct.pack(f"<{count}h", *(rng.randint(-12_000, 12_000) for _ in range(count)))


def _wav16k(pcm: bytes) -> bytes:
    return wav(pcm, sample_rate=16_000)


async def test_scripted_speech_answers_with_the_line_in_the_upload_once(
    server: OpenAIServer,
) -> None:
    heard = ScriptedSpeech()
    server.transcription_policy = heard
    yes, bill = _speech(1.0, seed=1), _speech(1.5, seed=2)
    heard.register(yes, "Yes, that's fine.")
    heard.register(bill, "I have a question about my bill.")
    stt = openai.STT(base_url=server.base_url, api_key="test", language="en")
    silence = bytes(16_000)  # 0.5 s

    async def recognise(pcm: bytes) -> str:
        frame = rtc.AudioFrame(
            data=pcm, sample_rate=16_000, num_channels=1, samples_per_channel=len(pcm) // 2
        )
        event = await stt.recognize(buffer=frame, conn_options=NO_RETRY)
        return event.alternatives[0].text

    try:
        # Padded with silence, as a voice activity detector uploads it.
        assert await recognise(silence + bill + silence) == "I have a question about my bill."
        assert await recognise(bill) == ""  # a line is returned once
        # Cut in two: the line comes with the piece that makes most of it heard.
        half = len(yes) // 2 // 2 * 2
        assert await recognise(yes[:half]) == ""
        assert await recognise(yes[half:]) == "Yes, that's fine."
        assert await recognise(silence) == ""
    finally:
        await stt.aclose()
    assert heard.unmatched == [5]
    assert [u.transcribed_by for u in heard.utterances] == [4, 1]
    assert heard.utterances[1].uploaded_by == [1, 2]


async def test_scripted_speech_never_returns_a_line_mostly_replaced_by_silence(
    server: OpenAIServer, client: openai_client.AsyncOpenAI
) -> None:
    heard = ScriptedSpeech()
    server.transcription_policy = heard
    pcm = _speech(2.0, seed=3)
    heard.register(pcm, "I want to speak to a manager right now.")
    # The session replaced the first 60% with silence (said over an uninterruptible line).
    kept = len(pcm) * 6 // 10 // 2 * 2
    upload = ("speech.wav", _wav16k(bytes(kept) + pcm[kept:]), "audio/wav")
    result = await client.audio.transcriptions.create(file=upload, model="whisper-1")
    assert result.text == ""
    assert not heard.utterances[0].transcribed
    assert heard.utterances[0].uploaded_by == [1]
    with pytest.raises(ValueError, match="no audible part"):
        heard.register(bytes(32_000), "silence")

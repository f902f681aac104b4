"""The production worker builds without a LiveKit server; providers follow credentials."""

from __future__ import annotations

import gc
import logging
import pickle

import pytest
from livekit.agents import AgentServer, llm

from switchboard.voice import collector, logfilter, providers, worker
from switchboard.voice.brain import RulesBrain
from switchboard.voice.load import WorkerLoad
from switchboard.voice.settings import VoiceSettings


def test_the_worker_server_builds_and_registers_the_agent_name() -> None:
    server = worker.build_server(VoiceSettings(agent_name="switchboard-test"))
    assert isinstance(server, AgentServer)


def test_job_processes_can_receive_the_entrypoint_and_setup() -> None:
    # The worker hands both to its job processes through pickle (forkserver); a closure
    # made every job process fail to start in the deployment check.
    assert pickle.loads(pickle.dumps(worker.entrypoint)) is worker.entrypoint
    assert pickle.loads(pickle.dumps(worker.prewarm)) is worker.prewarm


def test_sip_attributes_give_the_caller_and_a_subject_safe_call_id() -> None:
    info = worker.call_info(
        "AJ_abc.123/x",
        "room-1",
        "sip_caller",
        {"sip.phoneNumber": "+14155550123", "sip.trunkID": "ST_1"},
    )
    assert info.call_id == "AJ_abc-123-x"
    assert info.caller_number == "+14155550123"
    assert info.trunk == "ST_1"
    web = worker.call_info("AJ_1", "room-1", "web-user", {})
    assert web.caller_number is None


@pytest.mark.parametrize("number", ["anonymous", "4155550123", "+1 415 555 0123", "+0123"])
def test_a_number_that_is_not_e164_is_an_unknown_number(number: str) -> None:
    # The contracts carry E.164 only; a carrier's other forms are not guessed into one.
    info = worker.call_info("AJ_1", "room-1", "sip_caller", {"sip.phoneNumber": number})
    assert info.caller_number is None


def test_the_rules_brain_is_the_llm_by_default() -> None:
    brain = providers.language_model(VoiceSettings(), {"OPENAI_API_KEY": "sk-test"})
    assert isinstance(brain, RulesBrain)
    assert brain.authority


def test_the_openai_brain_needs_a_key() -> None:
    with pytest.raises(providers.ProviderError, match="OPENAI_API_KEY"):
        providers.language_model(VoiceSettings(brain="openai"), {})


def test_the_openai_brain_falls_back_to_the_rules_brain_in_safe_mode() -> None:
    env = {"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": "http://127.0.0.1:9/v1"}
    model = providers.language_model(VoiceSettings(brain="openai"), env)
    assert isinstance(model, llm.FallbackAdapter)
    *models, last = model._llm_instances
    assert isinstance(last, RulesBrain)
    assert not last.authority
    assert [m.model for m in models] == ["gpt-4.1-mini", "gpt-4.1-nano"]
    assert all(str(m._client.base_url) == "http://127.0.0.1:9/v1/" for m in models)  # type: ignore[attr-defined]


def test_speech_without_credentials_fails_with_a_clear_message() -> None:
    with pytest.raises(providers.ProviderError, match="OPENAI_API_KEY"):
        providers.speech_models(VoiceSettings(), {}, voice_activity=None)  # type: ignore[arg-type]


def test_livekit_personal_data_extras_are_redacted() -> None:
    record = logging.LogRecord("livekit", logging.WARNING, __file__, 1, "skipped", None, None)
    record.__dict__["lk.pii.user_input"] = "my card is 4111"
    assert logfilter.LiveKitPiiFilter().filter(record)
    assert record.__dict__["lk.pii.user_input"] == "[redacted]"


def test_the_manager_speaks_with_a_different_voice() -> None:
    from livekit.plugins import silero

    settings = VoiceSettings()
    env = {"OPENAI_API_KEY": "sk-test", "ELEVEN_API_KEY": "el-test"}
    _, voice, manager = providers.speech_models(settings, env, silero.VAD.load())
    # ElevenLabs first, OpenAI behind it, each with its own voice for the manager.
    main_chain = voice._tts_instances  # type: ignore[attr-defined]
    manager_chain = manager._tts_instances  # type: ignore[attr-defined]
    assert main_chain[0]._opts.voice_id == settings.elevenlabs_voice_id
    assert manager_chain[0]._opts.voice_id == settings.elevenlabs_manager_voice_id
    assert main_chain[0]._opts.voice_id != manager_chain[0]._opts.voice_id
    assert main_chain[1]._opts.voice != manager_chain[1]._opts.voice


def test_the_collector_is_set_for_many_calls_and_keeps_startup_objects_out() -> None:
    before = gc.get_threshold()
    try:
        collector.prepare_for_calls()
        assert gc.get_threshold()[:2] == (collector.YOUNG_THRESHOLD, collector.MIDDLE_THRESHOLD)
        assert gc.get_freeze_count() > 1000
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


class _Server:
    def __init__(self, jobs: int) -> None:
        self.active_jobs = [object()] * jobs


def test_the_load_counts_calls_against_the_capacity_as_well_as_cpu() -> None:
    quiet = WorkerLoad(20, cpu=lambda _server: 0.1)
    assert quiet(_Server(0)) == 0.1  # type: ignore[arg-type]
    assert quiet(_Server(14)) == 0.7  # type: ignore[arg-type]
    assert quiet(_Server(40)) == 1.0  # type: ignore[arg-type]
    busy = WorkerLoad(20, cpu=lambda _server: 0.9)
    assert busy(_Server(2)) == 0.9  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least one call"):
        WorkerLoad(0)


def test_the_server_reports_that_load_and_exports_it() -> None:
    server = worker.build_server(VoiceSettings(max_calls_per_worker=7, metrics_port=9177))
    assert isinstance(server.load_fnc, WorkerLoad)
    assert server._prometheus_port == 9177

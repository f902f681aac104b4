"""Settings of the voice worker, read from ``SB_*`` environment variables.

Provider credentials are not here: the LiveKit and provider plugins read their own
variables (``LIVEKIT_URL``, ``OPENAI_API_KEY``, ``ELEVEN_API_KEY``...), so secrets never pass
through our settings object or its logs.
"""

from __future__ import annotations

from typing import Literal

from switchboard.runtime.settings import ServiceSettings


class VoiceSettings(ServiceSettings, kw_only=True, frozen=True):
    """Timeouts, fallbacks and provider choices of the voice worker."""

    consent_policy_timeout_s: float = 1.0
    """How long to wait for the ledger's policy before using the strictest one."""
    consent_receipt_timeout_s: float = 3.0
    """How long to wait for a ConsentRecorded receipt; without one, recording stays off."""
    router_timeout_s: float = 1.5
    """How long to wait for the router before using the local fallback decision."""
    transfer_place_timeout_s: float = 2.0
    transfer_answer_timeout_s: float = 300.0
    """Longest a caller stays on hold for one transfer, whatever the bridge is still trying
    (waiting in line for a dial slot, ringing, the humans' briefings): then the worker
    cancels the transfer, which hangs up every leg, and offers a callback."""
    hold_reminder_s: float = 20.0
    """While the caller is on hold, how often they hear that we are still trying."""
    hold_audio: str = ""
    """What the caller hears on hold: empty for the built-in hold music, a path to an audio
    file, or ``none`` for silence. Text mode plays none."""
    fallback_queue_id: str = ""
    """Human queue used when the router is down; empty means offer a callback instead."""
    fallback_queue_address: str = ""
    """E.164 number or SIP URI of that queue (configuration, never caller input)."""
    fallback_queue_trunk: str = ""
    repeated_failure_limit: int = 3
    """Failed turns (frustration, repeated questions, tool errors) before escalating."""
    manager_credit_limit: float = 50.0
    """The largest goodwill credit the AI manager may approve on its own."""
    max_calls_per_worker: int = 25
    """Calls one worker pod takes before it reports itself full (``voice/load.py``; the
    figure comes from the voice benchmark, see the README)."""
    metrics_port: int = 9100
    """Where the worker exports its Prometheus metrics, ``lk_agents_worker_load`` among
    them (the HPA scales on it); 0 turns the exporter off."""
    agent_name: str = "switchboard"
    """The LiveKit agent name the production worker registers for dispatch."""
    brain: Literal["rules", "openai"] = "rules"
    """The LLM: ``rules`` (the deterministic rules brain, no model) or ``openai`` (OpenAI or
    any OpenAI-compatible server: ``OPENAI_API_KEY``, ``OPENAI_BASE_URL``), with the rules
    brain in safe mode behind it."""
    llm_attempt_timeout_s: float = 5.0
    """How long one model attempt may take before the next model in the chain is tried."""
    llm_retries: int = 1
    """Retries of a failed model request before the next model in the chain is tried."""
    llm_retry_interval_s: float = 0.5
    openai_llm_model: str = "gpt-4.1-mini"
    openai_fallback_llm_model: str = "gpt-4.1-nano"
    openai_stt_model: str = "gpt-4o-mini-transcribe"
    elevenlabs_voice_id: str = "21m00Tcm4TlvDq8ikWAM"
    elevenlabs_manager_voice_id: str = "pNInz6obpgDQGcFmaJgB"
    """The manager speaks with its own voice so callers hear that someone else took over."""
    egress_filepath: str = "recordings/{call_id}.ogg"
    """Where LiveKit Egress writes a call's audio (storage is configured on the egress side)."""

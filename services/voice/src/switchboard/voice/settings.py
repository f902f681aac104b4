"""Settings of the voice worker, read from ``SB_*`` environment variables.

Provider credentials are not here: the LiveKit and provider plugins read their own
variables (``LIVEKIT_URL``, ``OPENAI_API_KEY``, ``ELEVEN_API_KEY``...), so secrets never pass
through our settings object or its logs.
"""

from __future__ import annotations

from typing import Literal

from switchboard.contracts.consent import RECEIPT_TIMEOUT_S
from switchboard.runtime.settings import ServiceSettings
from switchboard.voice.authority import Limits, parse_limits, to_minor


class VoiceSettings(ServiceSettings, kw_only=True, frozen=True):
    """Timeouts, fallbacks and provider choices of the voice worker."""

    consent_policy_timeout_s: float = 1.0
    """How long to wait for the ledger's policy before using the strictest one."""
    consent_receipt_timeout_s: float = RECEIPT_TIMEOUT_S
    """How long to wait for a ConsentRecorded receipt; without one, recording stays off."""
    router_timeout_s: float = 1.5
    """How long to wait for the router before using the local fallback decision."""
    transfer_place_timeout_s: float = 2.0
    transfer_bridge_silent_s: float = 3.0
    """While a caller is on hold for a transfer the worker checks that a SIP bridge still
    answers (``$SRV.PING``, every third of this); after this long without one it stops
    waiting, tells the caller and offers a callback (a crashed bridge sends nothing)."""
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
    """The largest goodwill credit the AI manager may approve on its own (in ``currency``);
    above it the manager offers what it may and a colleague."""
    refund_limits: str = ""
    """The largest refund each agent may ask billing for, as ``agent=amount`` pairs
    (``billing=25``); an agent not listed may not request refunds and offers the manager."""
    orders_by_phone: bool = True
    """Whether the sales agent may place orders on a call (else it offers a person)."""
    currency: str = "USD"
    """ISO 4217 currency of the limits above and of the amounts agents act on."""
    event_outbox_dir: str = ""
    """A directory where the worker keeps each call event until JetStream has stored it,
    so a worker process that dies loses none: the next one to start publishes them. Empty:
    kept in memory only (retried through NATS outages, lost if the process dies)."""
    backoffice_timeout_s: float = 2.0
    """How long to wait for the CRM adapter (``sb.crm.*``) before telling the caller it
    cannot be done now."""
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
    endpointing_min_delay_s: float = 0.5
    """Silence after the caller's speech before their turn may end (the turn detector can
    wait longer, up to ``endpointing_max_delay_s``); see ``voice/turns.py``."""
    endpointing_max_delay_s: float = 3.0
    """The longest the session waits for more of the caller's turn."""
    turn_detection: Literal["model", "vad"] = "model"
    """How the end of the caller's turn is found: ``model`` (LiveKit's end-of-turn model on
    top of voice activity) or ``vad`` (voice activity and the endpointing delays alone)."""
    interruption_min_speech_s: float = 0.5
    """How much of the caller's speech, over the agent, pauses the agent (shorter sounds,
    a cough, do not)."""
    false_interruption_timeout_s: float = 2.0
    """After the caller talked over the agent and said nothing that made a turn ("mm-hmm"),
    how long the paused agent waits before it carries on where it stopped."""
    aec_warmup_s: float = 0.0
    """How long, from the agent's first words, the caller cannot interrupt (echo
    cancellation warming up); 0 turns it off. See ``voice/turns.py``."""
    egress_filepath: str = "recordings/{call_id}.ogg"
    """Where LiveKit Egress writes a call's audio (storage is configured on the egress side)."""

    def __post_init__(self) -> None:
        # A limit that cannot be read must stop the worker at start-up, naming the variable.
        if len(self.currency) != 3 or not self.currency.isupper():
            raise ValueError("Expected an ISO 4217 code such as USD - at `$.currency`")
        try:
            parse_limits(self.refund_limits)
        except ValueError as exc:
            raise ValueError(f"{exc} - at `$.refund_limits`") from None

    @property
    def limits(self) -> Limits:
        """The agents' authority, in minor units."""
        return Limits(
            currency=self.currency,
            credit_limit_minor=to_minor(self.manager_credit_limit),
            refund_limits_minor=parse_limits(self.refund_limits),
            orders_by_phone=self.orders_by_phone,
        )

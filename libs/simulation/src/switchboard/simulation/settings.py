"""Settings of the simulation: the voice worker's, plus where scenarios and state live."""

from __future__ import annotations

from switchboard.voice.settings import VoiceSettings


class SimulationSettings(VoiceSettings, kw_only=True, frozen=True):
    """``SB_*`` variables of ``python -m switchboard.simulation``."""

    scenarios_dir: str = "scenarios"
    """The scenario files ``demo`` plays."""
    var_dir: str = "var"
    """Where ``demo`` keeps the NATS store, the ledger and the logs."""

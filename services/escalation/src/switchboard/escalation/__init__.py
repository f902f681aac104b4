"""Escalation router: explained handoff decisions from a rules file (``sb.escalation.decide``)."""

__version__ = "0.1.0"

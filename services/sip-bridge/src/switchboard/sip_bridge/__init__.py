"""Switchboard SIP bridge: places human transfers (warm and cold) through LiveKit SIP, or a
simulated carrier, behind its own allow-list and rate limits, and publishes every
transfer state as an event."""

__version__ = "0.1.0"

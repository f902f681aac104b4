"""Test support for Switchboard: real NATS and PostgreSQL fixtures, and a bounded poll."""

from switchboard.testing.polling import eventually

__all__ = ["eventually"]

"""Test support for Switchboard: real NATS and PostgreSQL fixtures, in-memory stand-ins for
the backends (``fake_backends``), a bounded poll (``eventually``) and a scripted
OpenAI-compatible server (``openai_server``)."""

from switchboard.testing.polling import eventually

__all__ = ["eventually"]

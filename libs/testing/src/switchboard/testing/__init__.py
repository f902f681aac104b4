"""Test support for Switchboard: real NATS and PostgreSQL fixtures, and a scripted
OpenAI-compatible server (``openai_server``)."""

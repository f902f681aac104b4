"""Test support for Switchboard: real NATS and PostgreSQL fixtures."""

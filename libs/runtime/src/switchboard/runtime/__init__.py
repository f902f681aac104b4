"""Shared runtime for Switchboard services: settings, NATS, runner, telemetry, logging."""

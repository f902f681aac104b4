"""Switchboard operations tooling: what operators and the build run, never the services.

``python -m switchboard.ops permissions`` writes the nats-server users and permissions
generated from the subject table; ``python -m switchboard.ops schemas DIR`` exports the
JSON Schema and AsyncAPI documents of the contracts.
"""

"""Thin typed clients for the services the voice worker talks to over NATS.

Every request has a timeout and a fallback, so a caller is never left waiting on a
service that is down: the strictest consent policy, a local handoff decision, or a
rejected transfer that leads to a callback offer.
"""

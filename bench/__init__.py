"""Benchmarks, each measured against raw NATS in the same run (see DESIGN.md)."""

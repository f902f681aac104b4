"""Consent ledger: jurisdiction policy, hash-chained append-only ledger, receipts, audit."""

__version__ = "0.1.0"

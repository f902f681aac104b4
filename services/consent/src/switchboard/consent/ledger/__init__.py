"""The consent ledger: hash chain, sealing of personal data, signed checkpoints, storage."""

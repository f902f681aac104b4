"""How long ingest may hold a command, derived from one figure: how long the voice worker
waits for a receipt (``R``, ``SB_CONSENT_RECEIPT_TIMEOUT_S``, 3 s).

When a ledger process dies, JetStream hands the commands it held to another replica only
after ``ack_wait``; until then they also count against ``max_ack_pending``, which, once
full, stops every delivery. So both must leave a decision made during a crash time to be
recorded and confirmed inside ``R``:

- ``ack_wait = R / 3`` (1 s): redelivery one third into the wait, leaving two thirds for
  the next process to append the commands and publish their receipts.
- ``max_ack_pending = 2 x batch`` (512): one batch being appended while the one before
  is confirmed. At the measured ~3,000 commands/s a full window clears in ~0.2 s, well
  inside ``ack_wait``, so a healthy process is not redelivered from under itself, and a
  dead one blocks at most 512 commands for at most ``ack_wait``.
- ``publish_timeout = ack_wait``: a receipt the stream has not confirmed by then is given
  up and its command handed back; JetStream would redeliver it then anyway.
"""

from __future__ import annotations

from dataclasses import dataclass

ACK_WAIT_SHARE = 1 / 3
BATCHES_IN_FLIGHT = 2


@dataclass(frozen=True, slots=True)
class IngestTiming:
    batch: int
    ack_wait_s: float
    max_ack_pending: int
    publish_timeout_s: float


def ingest_timing(receipt_timeout_s: float, batch: int) -> IngestTiming:
    """The consumer's and the publisher's limits for a receipt wait and a batch size."""
    batch = max(1, batch)
    ack_wait_s = receipt_timeout_s * ACK_WAIT_SHARE
    return IngestTiming(
        batch=batch,
        ack_wait_s=ack_wait_s,
        max_ack_pending=BATCHES_IN_FLIGHT * batch,
        publish_timeout_s=ack_wait_s,
    )

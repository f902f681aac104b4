"""How long ingest may hold a command, derived from one figure: how long the voice worker
waits for a receipt (``R``, ``SB_CONSENT_RECEIPT_TIMEOUT_S``, 3 s).

When a ledger process dies, JetStream hands the commands it held to another replica only
after ``ack_wait``; until then they also count against ``max_ack_pending``, which, once
full, stops every delivery. So both must leave a decision made during a crash time to be
recorded and confirmed inside ``R``:

- ``ack_wait = R / 3`` (1 s): redelivery one third into the wait, leaving two thirds for
  the next process to append the commands and publish their receipts. A live process
  keeps what it holds from being redelivered under it by reporting progress (``+WPI``)
  on every message held for ``ack_wait / 2`` (``PullFeed``), so a slow moment (a loaded
  disk, a long commit) does not turn into redeliveries and duplicate work.
- ``max_ack_pending = 2 x batch`` (512): one batch being appended while the one before
  is confirmed. At the measured ~3,000 commands/s a full window clears in ~0.2 s; a dead
  process blocks at most 512 commands, for at most ``ack_wait``.
- ``publish_timeout = R``: a receipt the stream has not confirmed by the time the voice
  worker stops waiting is given up and its command handed back (redelivered at once).
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
        publish_timeout_s=receipt_timeout_s,
    )

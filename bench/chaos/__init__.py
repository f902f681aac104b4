"""The chaos run: many simulated calls through the real services while they crash.

``python -m bench.chaos --calls N`` starts a nats-server (JetStream store kept across its
restarts), the consent ledger on PostgreSQL (a schema of its own, dropped afterwards), the
router, the sip-bridge and the demo CRM as subprocesses, and plays N calls shaped like the
demo scenarios through the real agent graph (text mode, rules brain, one model per call),
several at once, in voice worker processes of their own (``worker``: about ten calls each,
as a deployment spreads calls over job processes). Meanwhile a chaos schedule kills
(``SIGKILL``) and restarts the ledger, the router and the bridge, restarts the nats-server
and cuts the ledger's PostgreSQL connections (``pg_terminate_backend``).

Afterwards it checks what must hold whatever crashed: every call ended served,
transferred, with a callback offer or with the scripted caller hanging up, none hung and
none silent for long; every consent command JetStream acknowledged is in the ledger
exactly once and the chain verifies; no recording started without a receipt; every
transfer has a terminal event; the bridge holds no leg of a finished call; and read as a
consumer de-duplicating by (``source``, ``id``), ``SB_EVENTS`` holds one event per fact,
one ``call.ended`` per call and each call's voice events numbered 1..n
(``--duplicate-window`` shortens JetStream's window so that copies are stored and the
consumer's de-duplication is what counts). The last line printed is JSON with the figures;
the exit code is 1 when a check fails.

Modules: ``stack`` (the processes and the faults), ``monkey`` (when which fault happens),
``calls`` (playing the calls and what each one showed), ``worker`` (a voice worker process
playing its share), ``audit`` (the checks after the run), ``events`` (the events as a
consumer reads them), ``__main__`` (the command line).
"""

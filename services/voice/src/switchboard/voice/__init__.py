"""Switchboard voice worker: the LiveKit Agents call graph, its rules brain and runners.

``python -m switchboard.voice start`` runs the production LiveKit worker,
``run-scenario FILE`` plays one scripted call in text mode over the real bus, and ``demo``
starts NATS and the backend services and plays every scenario in ``scenarios/``.
"""

__version__ = "0.1.0"

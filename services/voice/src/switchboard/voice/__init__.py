"""Switchboard voice worker: the LiveKit Agents call graph, its ports and its rules brain.

``python -m switchboard.voice start`` runs the production LiveKit worker. Scripted
text-mode calls and ``make demo`` live in the simulation package
(``python -m switchboard.simulation``), which depends on this one.
"""

__version__ = "0.1.0"

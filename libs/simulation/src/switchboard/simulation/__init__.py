"""Switchboard simulation: scripted calls through the real voice worker in text mode.

Scenario files (caller turns, carrier behaviour, expectations), the text-mode runner, the
bus observer and report, a scripted back office, and ``make demo``. It depends on the
voice worker (``switchboard.voice``); the worker never imports it.
"""

__version__ = "0.1.0"

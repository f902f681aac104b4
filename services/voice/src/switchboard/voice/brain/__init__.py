"""The rules brain: a deterministic stand-in for a language model.

It runs whole calls on a machine with no model credentials (text mode, the demo) and is
the last entry of the production LLM fallback chain, so consent, escalation and goodbyes
keep working when every provider is down. ``model`` is the ``llm.LLM`` it implements,
``decisions`` its decision table.
"""

from switchboard.voice.brain.model import RulesBrain

__all__ = ["RulesBrain"]

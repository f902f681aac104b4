"""The call graph: consent, triage, specialists, the manager, intake and callback tasks.

``roster.Roster`` is the one place that knows every agent class; flows such as escalation
and human transfer ask it (through the ``Staff`` protocol) for the next agent, which keeps
the modules free of import cycles.
"""

"""The rules brain in the consult room: the colleague's decision, and answers from the notes.

It acts when the briefing agent's tools are on offer. A voicemail greeting, a clear "no"
(with its reason as a category) and a clear "yes" become the tools; a question is answered
from the facts in the agent's notes (``transfer/facts.py``), never beyond them; anything
else gets the question again. The briefing itself is spoken by the agent, not by a model.
"""

from __future__ import annotations

import re
from typing import Final

from livekit.agents import llm

from switchboard.voice.transfer.facts import CONVERSATION_HEADING, FACTS_HEADING
from switchboard.voice.understanding import consult
from switchboard.voice.understanding.text import normalise

CONNECT: Final = "connect_to_caller"
DECLINE: Final = "decline_transfer"
VOICEMAIL: Final = "voicemail_detected"
ASK_AGAIN: Final = "Will you take the call? If not, I'll find someone else."
NOT_KNOWN: Final = "I don't have that from the call. Will you take it?"

# Which note answers a question, by the words in it (first match wins).
_TOPICS: Final[tuple[tuple[re.Pattern[str], tuple[str, ...]], ...]] = tuple(
    (re.compile(rf"\b(?:{words})\b"), keys)
    for words, keys in (
        (r"e-?mail", ("email",)),
        (r"address|ship\w*|deliver\w*", ("shipping address", "address")),
        (r"credit|refund|amount|money|dollars?", ("goodwill credit", "summary")),
        # "Their number", not an account or order number (which the call never has).
        (r"phone|calling from|(?:their|the|what|which) number", ("calling from",)),
        (r"record\w*|consent", ("recording",)),
        (r"language|speak", ("language",)),
        (r"tried|attempts?|already", ("what the assistant tried",)),
        (r"say|said|words", ("what they said last",)),
        (r"why|about|want|need|problem|issue|wrong|help", ("about", "summary")),
        (r"queue|team", ("queue",)),
    )
)


def offered(names: set[str]) -> bool:
    """Whether the request comes from the briefing agent."""
    return CONNECT in names


def decide(
    text: str, names: set[str], chat_ctx: llm.ChatContext
) -> tuple[str, dict[str, str]] | str:
    """A tool to call (name and arguments) or a line to say, for one thing the colleague said."""
    if VOICEMAIL in names and consult.is_voicemail_greeting(text):
        return VOICEMAIL, {}
    if DECLINE in names and consult.declines_call(text):
        return DECLINE, {"reason": consult.decline_reason(text).value}
    if consult.accepts_call(text):
        return CONNECT, {}
    if consult.is_question(text):
        return answer(text, notes(chat_ctx))
    return ASK_AGAIN


def answer(question: str, facts: dict[str, str]) -> str:
    """The note that answers ``question``, said plainly; never a guess."""
    q = normalise(question)
    for pattern, keys in _TOPICS:
        if pattern.search(q):
            for key in keys:
                value = facts.get(key)
                if value and value not in ("none", "not known", "nothing yet"):
                    return _said(key, value)
            return NOT_KNOWN
    for key, value in facts.items():
        if key in q:
            return _said(key, value)
    return NOT_KNOWN


def _said(key: str, value: str) -> str:
    return f"{key[0].upper()}{key[1:]}: {value.rstrip('.')}."


def notes(chat_ctx: llm.ChatContext) -> dict[str, str]:
    """The ``- key: value`` facts of the briefing agent's instructions."""
    facts: dict[str, str] = {}
    for item in chat_ctx.items:
        if not isinstance(item, llm.ChatMessage) or item.role not in ("system", "developer"):
            continue
        text = item.text_content or ""
        if FACTS_HEADING not in text:
            continue
        section = text.split(FACTS_HEADING, 1)[1].split(CONVERSATION_HEADING, 1)[0]
        for line in section.splitlines():
            key, sep, value = line.removeprefix("- ").partition(": ")
            if line.startswith("- ") and sep:
                facts[key.strip().lower()] = value.strip()
    return facts

"""What the human who answered a warm transfer says in the consult room.

Pure readings of one utterance of the colleague being briefed (not the caller): a
voicemail greeting, taking the call, declining it and why, a question. Like the rest of
the understanding it is conservative: a line that is neither a clear yes nor a clear no
is a question or nothing, never a decision, because connecting a caller to someone who
did not agree is worse than asking again.
"""

from __future__ import annotations

import re

from switchboard.contracts.transfer import DeclineReason
from switchboard.voice.understanding.text import normalise, words

_VOICEMAIL = words(
    r"leave (?:a|your) (?:message|name|voicemail)",
    r"after the (?:tone|beep)",
    r"at the (?:tone|beep)",
    r"voice ?mail",
    r"mail ?box",
    r"(?:is|am) not available (?:to take|right now|at the moment)",
    r"can't (?:come to|take) (?:the phone|your call)",
    r"you(?:'ve| have) reached",
    r"the (?:number|person) you (?:are calling|have dialled|have dialed)",
)
_DECLINE = words(
    r"no",
    r"nope",
    r"can't take",
    r"cannot take",
    r"can't do",
    r"not (?:now|today|right now|this one)",
    r"i (?:have to|must|need to) decline",
    r"decline",
    r"i'll pass",
    r"pass on (?:this|it)",
    r"send (?:it|them|him|her) (?:to )?(?:someone|somebody) else",
    r"not (?:my|our) (?:area|team|department|queue)",
    r"wrong (?:team|department|queue|person)",
)
_ACCEPT = words(
    r"yes",
    r"yeah",
    r"yep",
    r"sure",
    r"ok",
    r"okay",
    r"accept",
    r"i(?:'ll| will| can) take (?:it|them|him|her|the call|this one)",
    r"put (?:them|him|her|it|the caller) (?:through|on)",
    r"connect (?:me|them|us)",
    r"send (?:them|him|her|it) (?:through|over)",
    r"go ahead",
    r"ready",
)
_BUSY = words(
    r"another call", r"on a call", r"with a (?:customer|client|caller)", r"busy", r"swamped"
)
_WRONG_TEAM = words(
    r"wrong (?:team|department|queue|person)",
    r"not (?:my|our) (?:area|team|department|queue)",
    r"(?:should|needs to) go to",
    r"someone else",
    r"somebody else",
)
_UNAVAILABLE = words(
    r"leaving",
    r"going home",
    r"heading out",
    r"meeting",
    r"break",
    r"lunch",
    r"end of (?:my|the) shift",
    r"off (?:now|shift)",
)
_QUESTION_START = re.compile(
    r"^(?:what|what's|whats|who|who's|why|when|where|which|how|is|are|did|does|do|can you|"
    r"could you|tell me)\b"
)


def is_voicemail_greeting(text: str) -> bool:
    """An answering machine's greeting (nothing about the caller may be said to it)."""
    return bool(_VOICEMAIL.search(normalise(text)))


# "No problem" and "no worries" are assent, so they never count as a "no".
_ASSENT_IDIOMS = re.compile(r"\b(?:no problem|not a problem|no worries|not at all)\b")


def declines_call(text: str) -> bool:
    """The human says they will not take the call."""
    t = _ASSENT_IDIOMS.sub(" ", normalise(text))
    return bool(_DECLINE.search(t)) and not _is_question(t)


def accepts_call(text: str) -> bool:
    """The human clearly takes the call (and does not also decline it)."""
    t = normalise(text)
    assent = bool(_ACCEPT.search(t)) or bool(_ASSENT_IDIOMS.search(t))
    return assent and not declines_call(t) and not _is_question(t)


def decline_reason(text: str) -> DeclineReason:
    """Why the human declined, as a category (their words stay in the consult room)."""
    t = normalise(text)
    if _WRONG_TEAM.search(t):
        return DeclineReason.WRONG_TEAM
    if _BUSY.search(t):
        return DeclineReason.BUSY
    if _UNAVAILABLE.search(t):
        return DeclineReason.UNAVAILABLE
    return DeclineReason.OTHER


def is_question(text: str) -> bool:
    return _is_question(normalise(text))


def _is_question(t: str) -> bool:
    return t.endswith("?") or bool(_QUESTION_START.search(t))

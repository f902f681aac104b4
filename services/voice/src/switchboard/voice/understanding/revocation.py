"""Does the caller withdraw their consent to recording? Read from the words alone.

"Stop recording", "don't record this", "I don't want this call recorded anymore", "I
withdraw my consent", "can we go off the record". Not: "stop the recurring payment",
"record my new address", "for the record", "is this call being recorded?", "keep
recording", "don't stop recording", "send me the recording of my last call".
"""

from __future__ import annotations

import re

from switchboard.voice.understanding.clauses import clauses

_REC = r"(?:recording|recordings|recorder|taping|tape|record)"
_RECORDED = r"(?:recorded|taped|recording|taping)"
_STOP = (
    r"(?:stop|stopping|pause|pausing|end|ending|cancel|cancelling|canceling|halt|quit|"
    r"disable|kill|turn off|switch off|shut off|cut|cut off|discontinue|no more|no)"
)
_REVOKE = re.compile(
    "|".join(
        (
            rf"\b{_STOP} (?:the |this |your |that |all |any )?(?:call )?{_REC}\b",
            r"\b(?:turn|switch|shut|cut) (?:the |this |your |that )?(?:recording|recorder) off\b",
            r"\b(?:do not|please do not|cannot you|can you not|could you not|would you not|"
            r"will you not|you may not|you can not|you cannot) (?:please )?record\b",
            r"\b(?:can|could|would|will) you (?:please )?(?:just )?not record\b",
            r"\b(?:do not|no longer|never) (?:want|wish|agree|consent)(?: for)? (?:this|the|my|"
            r"our|any of this|you|it|anything|us|me)?(?: call| conversation| part)?(?: to be| "
            rf"being)? ?{_RECORDED}\b",
            r"\b(?:do not|no longer|never) (?:want|wish|agree|consent) to (?:be|being) recorded\b",
            r"\b(?:do not|no longer) (?:consent|agree) to (?:this|the|my|any)? ?(?:call )?"
            r"(?:being recorded|recording|the recording)\b",
            r"\bnot (?:comfortable|happy|okay|ok) (?:with )?(?:being recorded|the recording|"
            r"this being recorded|you recording)\b",
            r"\b(?:prefer|rather|like) (?:it |you |this )?(?:not|did not|do not|were not|was not)"
            r" (?:to )?(?:be )?record(?:ed|ing)?\b",
            r"\b(?:rather|prefer) (?:not )?(?:you )?(?:did not|do not) record\b",
            r"\b(?:withdraw|withdrawing|revoke|revoking|retract|retracting|take back|taking back"
            r"|cancel|rescind|pull) (?:my |our |the )?(?:consent|permission|agreement)\b",
            r"\bno longer (?:consent|agree|give (?:my )?(?:consent|permission))\b",
            r"\bchanged? my mind (?:about|on) (?:the |being )?record(?:ing|ed)?\b",
            r"\b(?:do not|did not|not|never|no longer) (?:give|gave|giving|grant|granting) "
            r"(?:you )?(?:my |any )?(?:permission|consent) (?:to|for) (?:\S+ ){0,4}record",
            r"\b(?:do not|did not) have (?:my|any|our) (?:permission|consent) (?:to|for) "
            r"(?:\S+ ){0,4}record",
            r"\bno (?:want|like) (?:you |this |to be |that )?record",
            r"\b(?:no|do not have the|do not have any|not have the|have no) right to record\b",
            r"\bdid not (?:say|tell you|agree that|give you permission that) (?:that )?you "
            r"(?:could|can|may) record\b",
            r"\b(?:delete|erase|destroy|wipe|get rid of) (?:this|the|my|that|any) (?:call )?"
            r"(?:recording|recordings)\b",
            r"\b(?:not|no longer|never|stop) consenting to (?:being |this being |the |any )?"
            r"(?:recorded|recording)\b",
            r"\b(?:did not|never) (?:agree|consent|agreed|consented) to (?:be|being|this|the|any)"
            r" ?(?:call )?(?:recorded|recording|being recorded)\b",
            r"\bwithout (?:it |this |the call |this call |me |us )?(?:being recorded|"
            r"the recording|recording)\b",
            r"\bobject(?:ing)? to (?:this |the |my |being |any )?(?:call )?(?:being )?record",
            r"\bopt (?:me |us )?out of (?:the |this |call |any )*record",
            r"\b(?:go|be|stay|talk|keep this|keep it) off the record\b",
            r"\b(?:want|like|need) (?:the |this |that )?recording (?:stopped|off|turned off|"
            r"ended|paused|deleted)\b",
            r"\b(?:stop|quit|do not keep|no more) recording\b",
        )
    )
)
# What cancels a match in the same clause: "don't stop recording", "never asked you to stop".
_KEEP = re.compile(
    r"\b(?:do not|did not|never|no need to|not) (?:\w+ )?(?:stop|end|pause|turn off|cancel)\b"
    r"|\bkeep (?:on )?recording\b|\b(?:do not|never) mind\b"
)


# "Turn it off" counts when the same utterance is about recording ("you've no right to
# record me, turn it off").
_IT_OFF = re.compile(
    r"\b(?:turn|switch|shut|stop|cut) (?:it|that|this|that thing|the thing) (?:off|now)\b"
    r"|\b(?:turn|switch|shut) (?:it|that|this) off\b|\bstop (?:it|that) now\b"
    r"|\bstop (?:it|that)$"
)
_ABOUT_RECORDING = re.compile(r"\brecord(?:ed|ing)?\b|\btap(?:ed|ing)\b")
_NOT_ABOUT_THIS_CALL = re.compile(r"\brecord (?:my|a|the|your|of)\b|\bfor the record\b")
# Recordings on a TV box are not this call's recording.
_TV_RECORDING = re.compile(
    r"\b(?:scheduled|series link|dvr|pvr|episode|episodes|show|shows|programme|program|"
    r"movie|film|season)\b|\brecordings? (?:i|we|that i|that we) "
    r"(?:set|made|booked|scheduled)\b"
)


def revokes_consent(text: str) -> bool:
    """Whether the caller withdraws consent to recording this call."""
    parts = clauses(text)
    joined = " ".join(parts)
    if _TV_RECORDING.search(joined) and not re.search(r"\b(?:this|the) call\b", joined):
        return False
    if (
        _ABOUT_RECORDING.search(joined)
        and not _NOT_ABOUT_THIS_CALL.search(joined)
        and any(_IT_OFF.search(c) for c in parts)
    ):
        return True
    for clause in parts:
        match = _REVOKE.search(clause)
        if match is None:
            continue
        if _KEEP.search(clause[: match.end()]) and not match.group(0).startswith(
            ("do not record", "please do not record")
        ):
            continue
        return True
    return False


_AND = re.compile(r"\band(?: then| also)?\b|\bthen\b|\balso\b")


def without_revocation(text: str) -> str:
    """What else the caller said, with the request to stop recording taken out
    ("stop recording and explain my bill" → "explain my bill")."""
    kept = []
    for clause in clauses(text):
        kept += [p.strip() for p in _AND.split(clause) if p.strip() and not revokes_consent(p)]
    return " ".join(kept)

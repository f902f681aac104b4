"""SIP headers that carry the handoff context to the human's phone system.

Only identifiers travel in headers (call, transfer, destination, intent, language,
context version): SIP headers are logged by every proxy and carrier on the path, so the
summary, the collected fields and the whisper stay out. The receiving desk uses the ids
to open the conversation in the CRM. Values are restricted to a token alphabet; anything
else is replaced by a digest, so no request field can inject a header line.
"""

from __future__ import annotations

import re

from switchboard.sip_bridge.drivers.base import DialPlan, short_token

HEADER_PREFIX = "X-Switchboard-"
_TOKEN = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def header_value(value: str) -> str:
    """``value`` when it is a plain token, else a stable digest of it."""
    if _TOKEN.fullmatch(value):
        return value
    return f"h-{short_token(value, 8)}"


def handoff_headers(plan: DialPlan) -> dict[str, str]:
    """The ``X-Switchboard-*`` headers sent with the INVITE (warm) or REFER (cold)."""
    headers = {
        f"{HEADER_PREFIX}Call-Id": header_value(plan.call_id),
        f"{HEADER_PREFIX}Transfer-Id": header_value(plan.transfer_id),
        f"{HEADER_PREFIX}Destination-Id": header_value(plan.destination.id),
        f"{HEADER_PREFIX}Attempt": str(plan.attempt),
    }
    context = plan.context
    if context is not None:
        headers[f"{HEADER_PREFIX}Context-Version"] = str(context.version)
        headers[f"{HEADER_PREFIX}Language"] = header_value(context.language)
        headers[f"{HEADER_PREFIX}Ai-Attempts"] = str(context.attempts)
        if context.intent:
            headers[f"{HEADER_PREFIX}Intent"] = header_value(context.intent)
    return headers

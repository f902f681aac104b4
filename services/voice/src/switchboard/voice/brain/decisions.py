"""The rules brain's decision table: from the conversation and the tools on offer, what to do.

The brain has no knowledge of which agent it serves except through the tools that agent
offers (``self._tools`` of the LLM stream), so the rules are keyed by tool names. Tool
outputs in this worker are short caller-facing sentences, which is what lets the brain
answer a ``function_call_output`` turn by saying it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Final

from livekit.agents import llm
from livekit.agents.llm.utils import build_legacy_openai_schema

from switchboard.voice import understanding as u
from switchboard.voice.triggers import detect_escalation, revokes_consent

SUMMARY_PROMPT_PREFIX: Final = "Compress older conversation history"
"""How livekit-agents' chat-context summariser (used by TaskGroup) starts its prompt."""

INTERNAL_ERROR: Final = "An internal error occurred"


@dataclass(frozen=True, slots=True)
class Say:
    text: str


@dataclass(frozen=True, slots=True)
class CallTool:
    name: str
    arguments: dict[str, Any] = field(default_factory=dict)


Action = Say | CallTool

_ROLE_FALLBACKS: Final[tuple[tuple[str, str], ...]] = (
    ("record_consent_answer", "Sorry, I didn't catch that. May we record this call, yes or no?"),
    ("accept_callback", "Would you like us to call you back? Please say yes or no."),
    (
        "record_email",
        "Sorry, I didn't catch an email address. Could you say it again, for example "
        "jane at example dot com?",
    ),
    ("record_address", "Could you give me the full street address, starting with the number?"),
    (
        "approve_goodwill_credit",
        "I'm the duty manager. Tell me what went wrong and I'll see what I can do.",
    ),
    (
        "explain_latest_bill",
        "I can explain your latest bill or look into a refund. What would you like to do?",
    ),
    ("troubleshoot", "Can you describe the problem you're having?"),
    (
        "place_order",
        "I can tell you about our plans or place an order for you. What are you interested in?",
    ),
    (
        "route_to_department",
        "How can I help you today? I can help with billing, technical support, or sales.",
    ),
)
_DEFAULT_FALLBACK: Final = "Sorry, could you say that again?"
_REVOKED_ACK: Final = "Understood. This call is no longer being recorded."


def respond(chat_ctx: llm.ChatContext, tools: list[llm.Tool]) -> Action:
    """Decide the next step for one LLM request."""
    if _is_summary_request(chat_ctx):
        return Say(summarise(chat_ctx))
    names = {t.id for t in tools}
    last = _last_turn(chat_ctx)
    if isinstance(last, llm.FunctionCallOutput):
        return Say(_speak_output(last))
    if isinstance(last, llm.ChatMessage) and last.role == "user":
        return _answer_user(last.text_content or "", chat_ctx, tools, names)
    return Say(fallback(names))


def fallback(names: set[str]) -> str:
    """What to say when nothing more specific applies: the agent's own opening question."""
    for tool, text in _ROLE_FALLBACKS:
        if tool in names:
            return text
    return _DEFAULT_FALLBACK


def _answer_user(
    text: str, chat_ctx: llm.ChatContext, tools: list[llm.Tool], names: set[str]
) -> Action:
    for rule in _RULES:
        action = rule(text, chat_ctx, tools, names)
        if action is not None:
            return action
    return Say(fallback(names))


def _consent(text: str, _c: llm.ChatContext, _t: list[llm.Tool], names: set[str]) -> Action | None:
    if "record_consent_answer" not in names:
        return None
    return CallTool("record_consent_answer", {"answer": u.consent_answer(text).value})


def _callback(text: str, _c: llm.ChatContext, _t: list[llm.Tool], names: set[str]) -> Action | None:
    if "accept_callback" not in names:
        return None
    if u.is_yes(text):
        return CallTool("accept_callback")
    if u.is_no(text) or u.is_goodbye(text):
        return CallTool("decline_callback")
    return None


def _go_back(
    text: str, _c: llm.ChatContext, tools: list[llm.Tool], names: set[str]
) -> Action | None:
    if "out_of_scope" not in names or not u.wants_to_go_back(text):
        return None
    allowed = _out_of_scope_ids(tools)
    named = u.correction_targets(text)
    # "Go back" alone means the previous step; naming the current step ("my email is
    # wrong" while giving the email) is not a step back, the step's own tool handles it.
    targets = [t for t in named if t in allowed] if named else allowed[-1:]
    if not targets:
        return None
    return CallTool("out_of_scope", {"task_ids": targets})


def _email(text: str, _c: llm.ChatContext, _t: list[llm.Tool], names: set[str]) -> Action | None:
    if "record_email" not in names:
        return None
    email = u.find_email(text)
    return CallTool("record_email", {"email": email}) if email else None


def _address(text: str, _c: llm.ChatContext, _t: list[llm.Tool], names: set[str]) -> Action | None:
    if "record_address" not in names:
        return None
    address = u.find_address(text)
    return CallTool("record_address", {"address": address}) if address else None


def _goodbye(text: str, _c: llm.ChatContext, _t: list[llm.Tool], names: set[str]) -> Action | None:
    if "end_call" in names and u.is_goodbye(text):
        return CallTool("end_call")
    return None


def _revoked(text: str, _c: llm.ChatContext, _t: list[llm.Tool], _n: set[str]) -> Action | None:
    # The screening already stopped the recording; the brain only confirms it.
    return Say(_REVOKED_ACK) if revokes_consent(text) else None


def _escalate(text: str, _c: llm.ChatContext, _t: list[llm.Tool], names: set[str]) -> Action | None:
    if "escalate" not in names:
        return None
    ask = detect_escalation(text)
    return CallTool("escalate", {"reason": ask.reason.value}) if ask else None


def _credit(
    text: str, chat_ctx: llm.ChatContext, _t: list[llm.Tool], names: set[str]
) -> Action | None:
    if "approve_goodwill_credit" not in names or not u.asks_for_refund(text):
        return None
    amount = u.find_amount(text) or _amount_in_history(chat_ctx) or 25.0
    return CallTool("approve_goodwill_credit", {"amount": amount})


def _refund(text: str, _c: llm.ChatContext, _t: list[llm.Tool], names: set[str]) -> Action | None:
    if "request_refund" in names and u.asks_for_refund(text):
        return CallTool("request_refund")
    return None


def _order(text: str, _c: llm.ChatContext, _t: list[llm.Tool], names: set[str]) -> Action | None:
    if "place_order" not in names or not u.wants_to_order(text):
        return None
    return CallTool("place_order", {"product": _product(text)})


def _quote(text: str, _c: llm.ChatContext, _t: list[llm.Tool], names: set[str]) -> Action | None:
    if "quote_plans" in names and re.search(r"\b(price|prices|pricing|plans?|cost)\b", text, re.I):
        return CallTool("quote_plans")
    return None


def _support(text: str, _c: llm.ChatContext, _t: list[llm.Tool], names: set[str]) -> Action | None:
    if "troubleshoot" not in names:
        return None
    if u.sounds_resolved(text):
        return Say("Great, I'm glad it's working again. Is there anything else I can help with?")
    if u.intent(text) == "support":
        return CallTool("troubleshoot", {"problem": _problem(text)})
    return None


def _bill(text: str, _c: llm.ChatContext, _t: list[llm.Tool], names: set[str]) -> Action | None:
    if "explain_latest_bill" in names and u.intent(text) == "billing":
        return CallTool("explain_latest_bill")
    return None


def _route(text: str, _c: llm.ChatContext, _t: list[llm.Tool], names: set[str]) -> Action | None:
    if "route_to_department" not in names:
        return None
    department = u.intent(text)
    return CallTool("route_to_department", {"department": department}) if department else None


# Order matters: a pending question (consent, callback, an intake step) is answered before
# anything else, goodbyes and escalations before department work, and a specialist's own
# tools before a lateral move to another department.
_RULES = (
    _consent,
    _callback,
    _go_back,
    _email,
    _address,
    _goodbye,
    _revoked,
    _escalate,
    _credit,
    _refund,
    _order,
    _quote,
    _support,
    _bill,
    _route,
)

_PRODUCTS: Final = ("headset", "router", "premium plan", "basic plan")


def _product(text: str) -> str:
    t = u.normalise(text)
    return next((p for p in _PRODUCTS if p in t), "premium plan")


_PROBLEMS: Final = ("internet", "wifi", "router", "password", "login", "connection", "error")


def _problem(text: str) -> str:
    t = u.normalise(text)
    return next((p for p in _PROBLEMS if p in t), "general")


def _amount_in_history(chat_ctx: llm.ChatContext) -> float | None:
    for item in reversed(chat_ctx.items):
        if isinstance(item, llm.ChatMessage) and item.role == "user":
            amount = u.find_amount(item.text_content or "")
            if amount is not None:
                return amount
    return None


def _out_of_scope_ids(tools: list[llm.Tool]) -> list[str]:
    """The task ids TaskGroup's ``out_of_scope`` tool accepts (an enum in its schema)."""
    for tool in tools:
        if tool.id == "out_of_scope" and isinstance(tool, llm.FunctionTool):
            schema = build_legacy_openai_schema(tool)["function"]["parameters"]
            items = schema.get("properties", {}).get("task_ids", {}).get("items", {})
            return [str(x) for x in items.get("enum", [])]
    return []


def _is_summary_request(chat_ctx: llm.ChatContext) -> bool:
    first = chat_ctx.items[0] if chat_ctx.items else None
    return (
        isinstance(first, llm.ChatMessage)
        and first.role == "system"
        and (first.text_content or "").startswith(SUMMARY_PROMPT_PREFIX)
    )


def _last_turn(chat_ctx: llm.ChatContext) -> llm.ChatItem | None:
    """The newest item that asks for an answer: a caller message or a tool output.

    Instructions appended for this one reply and config updates are skipped; an
    assistant message or a handoff marker means the agent has the floor.
    """
    for item in reversed(chat_ctx.items):
        if isinstance(item, llm.ChatMessage) and item.role in ("system", "developer"):
            continue
        if isinstance(item, llm.FunctionCallOutput | llm.ChatMessage):
            return item
        if isinstance(item, llm.FunctionCall | llm.AgentHandoff):
            # After a handoff the new agent has the floor: it opens, it does not replay
            # the request that brought the caller here (that would loop escalations).
            return None
    return None


def _speak_output(output: llm.FunctionCallOutput) -> str:
    text = output.output.strip()
    if output.is_error and text.startswith(INTERNAL_ERROR):
        return "Sorry, something went wrong on my side. Could you say that again?"
    return text or "Done."


_CALL = re.compile(
    r"<function_call name=\"(?P<name>[^\"]+)\"[^>]*>\s*(?P<args>\{.*?\})\s*</function_call>", re.S
)


def summarise(chat_ctx: llm.ChatContext) -> str:
    """A faithful, deterministic summary for TaskGroup's summarisation prompt: the last
    value each data-collecting tool recorded, which is what later agents need."""
    source = "\n".join(
        (i.text_content or "") for i in chat_ctx.items if isinstance(i, llm.ChatMessage)
    )
    collected: dict[str, str] = {}
    for match in _CALL.finditer(source):
        try:
            args = json.loads(match.group("args"))
        except ValueError:
            continue
        if isinstance(args, dict):
            for key, value in args.items():
                if isinstance(value, str):
                    collected[key] = value
    if not collected:
        return "The caller went through the intake steps; nothing was recorded."
    facts = "; ".join(f"{key.replace('_', ' ')}: {value}" for key, value in collected.items())
    return f"The caller provided these details (final values): {facts}."

"""The rules brain's decision table: from the conversation and the tools on offer, what to do.

The brain has no knowledge of which agent it serves except through the tools that agent
offers, so the rules are keyed by tool names (``Offered``: name → JSON schema of the
parameters, the shape both livekit tools and an OpenAI request carry). Tool outputs in
this worker are short caller-facing sentences, which is what lets the brain answer a
``function_call_output`` turn by saying them.

It never invents what the caller did not say: no default amount for a credit, no default
product for an order. Without authority (``authority=False``, the production fallback
when every model is down) it grants nothing at all (credits, orders): it keeps consent and
escalation working, answers what it can, and offers a person instead. A turn it cannot act
on is answered with a chunk whose id starts with ``NOT_UNDERSTOOD`` (the agent counts it as
a failed turn); the second one in a row offers a person.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from livekit.agents import llm

from switchboard.voice import understanding as u
from switchboard.voice.brain import briefing
from switchboard.voice.triggers import choice, detect_escalation, revokes_consent

SUMMARY_PROMPT_PREFIX: Final = "Compress older conversation history"
"""How livekit-agents' chat-context summariser (used by TaskGroup) starts its prompt."""

INTERNAL_ERROR: Final = "An internal error occurred"

Offered = Mapping[str, Mapping[str, Any]]
"""The tools on offer: name → JSON schema of its parameters."""


@dataclass(frozen=True, slots=True)
class Say:
    text: str
    understood: bool = True
    """False when the brain could not act on the caller's turn."""


@dataclass(frozen=True, slots=True)
class CallTool:
    name: str
    arguments: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CallTools:
    """Several tools at once, e.g. stop recording and explain the bill."""

    calls: tuple[CallTool, ...]


Action = Say | CallTool | CallTools


@dataclass(frozen=True, slots=True)
class Turn:
    """One caller turn and what the brain may do with it."""

    text: str
    chat_ctx: llm.ChatContext
    offered: Offered
    authority: bool

    @property
    def names(self) -> set[str]:
        return set(self.offered)


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
OFFER_PERSON: Final = (
    "I'm sorry, I'm not able to help with that myself. Would you like me to put you "
    "through to a person?"
)
NO_AUTHORITY: Final = (
    "I can't approve credits, refunds or orders right now. I can put you through to a "
    "person who can. Would you like that?"
)
WHICH_AMOUNT: Final = "How much are you asking for?"
WHICH_PRODUCT: Final = "Which product would you like to order?"
_OFFERS: Final = (OFFER_PERSON, NO_AUTHORITY)


def respond(chat_ctx: llm.ChatContext, offered: Offered, *, authority: bool = True) -> Action:
    """Decide the next step for one LLM request."""
    if _is_summary_request(chat_ctx):
        return Say(summarise(chat_ctx))
    last = _last_turn(chat_ctx)
    if isinstance(last, llm.FunctionCallOutput):
        return Say(_speak_outputs(chat_ctx))
    if isinstance(last, llm.ChatMessage) and last.role == "user":
        return answer(Turn(last.text_content or "", chat_ctx, offered, authority))
    return Say(fallback(set(offered)))


def fallback(names: set[str]) -> str:
    """What to say when nothing more specific applies: the agent's own opening question."""
    for tool, text in _ROLE_FALLBACKS:
        if tool in names:
            return text
    return _DEFAULT_FALLBACK


def answer(turn: Turn, rules: tuple[Rule, ...] | None = None) -> Action:
    """The first rule that acts on the turn; else the agent's opening question, or an
    offer of a person when the previous turn was not understood either."""
    for rule in rules or _RULES:
        action = rule(turn)
        if action is not None:
            return action
    if _still_not_understood(turn) and "escalate" in turn.names:
        return Say(OFFER_PERSON, understood=False)
    return Say(fallback(turn.names), understood=False)


Rule = Callable[[Turn], Action | None]


def _consult_room(turn: Turn) -> Action | None:
    """The colleague being briefed about a transfer (the briefing agent's tools)."""
    if not briefing.offered(turn.names):
        return None
    decided = briefing.decide(turn.text, turn.names, turn.chat_ctx)
    if isinstance(decided, str):
        return Say(decided)
    name, arguments = decided
    return CallTool(name, dict(arguments))


def _escalate(turn: Turn) -> Action | None:
    if "escalate" not in turn.names:
        return None
    ask = detect_escalation(turn.text)
    return CallTool("escalate", {"reason": choice(ask)}) if ask else None


def _offer_reply(turn: Turn) -> Action | None:
    """The caller answers an offer of a person."""
    if "escalate" not in turn.names or _last_agent_line(turn.chat_ctx) not in _OFFERS:
        return None
    if u.is_yes(turn.text):
        return CallTool("escalate", {"reason": "caller_wants_person"})
    if u.is_no(turn.text):
        return Say(fallback(turn.names))
    return None


def _consent(turn: Turn) -> Action | None:
    if "record_consent_answer" not in turn.names:
        return None
    return CallTool("record_consent_answer", {"answer": u.consent_answer(turn.text).value})


def _callback(turn: Turn) -> Action | None:
    if "accept_callback" not in turn.names:
        return None
    if u.is_yes(turn.text):
        return CallTool("accept_callback")
    if u.is_no(turn.text) or u.is_goodbye(turn.text):
        return CallTool("decline_callback")
    return None


def _go_back(turn: Turn) -> Action | None:
    if "out_of_scope" not in turn.names or not u.wants_to_go_back(turn.text):
        return None
    allowed = _out_of_scope_ids(turn.offered)
    named = u.correction_targets(turn.text)
    # "Go back" alone means the previous step; naming the current step ("my email is
    # wrong" while giving the email) is not a step back, the step's own tool handles it.
    targets = [t for t in named if t in allowed] if named else allowed[-1:]
    if not targets:
        return None
    return CallTool("out_of_scope", {"task_ids": targets})


def _email(turn: Turn) -> Action | None:
    if "record_email" not in turn.names:
        return None
    email = u.find_email(turn.text)
    return CallTool("record_email", {"email": email}) if email else None


def _address(turn: Turn) -> Action | None:
    if "record_address" not in turn.names:
        return None
    address = u.find_address(turn.text)
    return CallTool("record_address", {"address": address}) if address else None


def _goodbye(turn: Turn) -> Action | None:
    if "end_call" in turn.names and u.is_goodbye(turn.text):
        return CallTool("end_call")
    return None


def _revoked(turn: Turn) -> Action | None:
    """Stop recording, and in the same answer do what else the caller asked."""
    if "revoke_recording_consent" not in turn.names or not revokes_consent(turn.text):
        return None
    calls = [CallTool("revoke_recording_consent")]
    rest = u.without_revocation(turn.text)
    if rest:
        also = answer(
            Turn(rest, turn.chat_ctx, turn.offered, turn.authority), rules=_AFTER_REVOCATION
        )
        if isinstance(also, CallTool):
            calls.append(also)
    return CallTools(tuple(calls))


def _credit(turn: Turn) -> Action | None:
    if "approve_goodwill_credit" not in turn.names or not u.asks_for_refund(turn.text):
        return None
    if not turn.authority:
        return Say(NO_AUTHORITY)
    amount = u.find_amount(turn.text) or _amount_in_history(turn.chat_ctx)
    if amount is None:
        return Say(WHICH_AMOUNT)
    return CallTool("approve_goodwill_credit", {"amount": amount})


def _refund(turn: Turn) -> Action | None:
    if "request_refund" not in turn.names or not u.asks_for_refund(turn.text):
        return None
    # In safe mode no amount is passed: the tool then offers the manager, or asks how much.
    amount = u.find_amount(turn.text) if turn.authority else None
    return CallTool("request_refund", {} if amount is None else {"amount": amount})


def _order(turn: Turn) -> Action | None:
    if "place_order" not in turn.names or not u.wants_to_order(turn.text):
        return None
    if not turn.authority:
        return Say(NO_AUTHORITY)
    product = _product(turn.text, turn.offered["place_order"])
    if product is None:
        return Say(WHICH_PRODUCT)
    return CallTool("place_order", {"product": product})


def _quote(turn: Turn) -> Action | None:
    if "quote_plans" in turn.names and re.search(
        r"\b(price|prices|pricing|plans?|cost)\b", turn.text, re.I
    ):
        return CallTool("quote_plans")
    return None


def _support(turn: Turn) -> Action | None:
    if "troubleshoot" not in turn.names:
        return None
    if u.sounds_resolved(turn.text):
        return Say("Great, I'm glad it's working again. Is there anything else I can help with?")
    if u.intent(turn.text) == "support":
        return CallTool("troubleshoot", {"problem": _problem(turn.text)})
    return None


def _bill(turn: Turn) -> Action | None:
    if "explain_latest_bill" in turn.names and u.intent(turn.text) == "billing":
        return CallTool("explain_latest_bill")
    return None


def _route(turn: Turn) -> Action | None:
    if "route_to_department" not in turn.names:
        return None
    department = u.intent(turn.text)
    return CallTool("route_to_department", {"department": department}) if department else None


# Order matters: the consult room (the briefing agent) is another conversation altogether;
# an escalation comes first (even while a question is pending: the caller
# asked for someone instead of answering), then a pending question (consent, callback,
# an offer of a person, an intake step), goodbyes before department work, and a
# specialist's own tools before a lateral move to another department.
_RULES: Final[tuple[Rule, ...]] = (
    _consult_room,
    _escalate,
    _consent,
    _callback,
    _offer_reply,
    _go_back,
    _email,
    _address,
    _goodbye,
    _revoked,
    _credit,
    _refund,
    _order,
    _quote,
    _support,
    _bill,
    _route,
)
_AFTER_REVOCATION: Final[tuple[Rule, ...]] = (
    _credit,
    _refund,
    _order,
    _quote,
    _support,
    _bill,
    _route,
)
"""What else a caller may ask in the same breath as "stop recording"."""


def _product(text: str, parameters: Mapping[str, Any]) -> str | None:
    """The product the caller named, among those the tool accepts; never a default."""
    options = parameters.get("properties", {}).get("product", {}).get("enum", [])
    t = u.normalise(text)
    return next((str(p) for p in options if str(p) in t), None)


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


def _out_of_scope_ids(offered: Offered) -> list[str]:
    """The task ids TaskGroup's ``out_of_scope`` tool accepts (an enum in its schema)."""
    schema = offered.get("out_of_scope", {})
    items = schema.get("properties", {}).get("task_ids", {}).get("items", {})
    return [str(x) for x in items.get("enum", [])]


def _last_agent_line(chat_ctx: llm.ChatContext) -> str:
    """What the agent said last before the caller's newest turn."""
    seen_user = False
    for item in reversed(chat_ctx.items):
        if isinstance(item, llm.ChatMessage) and item.role == "user":
            if seen_user:
                return ""
            seen_user = True
        elif isinstance(item, llm.ChatMessage) and item.role == "assistant" and seen_user:
            return (item.text_content or "").strip()
    return ""


def _still_not_understood(turn: Turn) -> bool:
    """Whether the agent's last line was itself an answer to a caller turn it could not
    act on (its opening question said again, or the offer of a person), so this is the
    second such turn in a row. The same question as an opening does not count."""
    lines = {fallback(turn.names), OFFER_PERSON}
    users = 0
    for item in reversed(turn.chat_ctx.items):
        if isinstance(item, llm.ChatMessage) and item.role == "user":
            users += 1
            if users == 2:
                return False
        elif isinstance(item, llm.ChatMessage) and item.role == "assistant" and users == 1:
            if (item.text_content or "").strip() not in lines:
                return False
            # Found the agent's last line: it counts only if a caller turn came before it.
            return any(
                isinstance(i, llm.ChatMessage) and i.role == "user"
                for i in turn.chat_ctx.items[: turn.chat_ctx.items.index(item)]
            )
        elif isinstance(item, llm.AgentHandoff):
            return False
    return False


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
        if _is_instruction(item) or _is_summary(item):
            continue
        if isinstance(item, llm.FunctionCallOutput | llm.ChatMessage):
            return item
        if isinstance(item, llm.FunctionCall | llm.AgentHandoff):
            # After a handoff the new agent has the floor: it opens, it does not replay
            # the request that brought the caller here (that would loop escalations).
            return None
    return None


def _speak_outputs(chat_ctx: llm.ChatContext) -> str:
    """Say what the tools of the last step returned, in order (several tools may have run
    in one step: "I've stopped recording. Your latest invoice is...")."""
    outputs: list[llm.FunctionCallOutput] = []
    for item in reversed(chat_ctx.items):
        if isinstance(item, llm.FunctionCallOutput):
            outputs.append(item)
        elif isinstance(item, llm.FunctionCall) or _is_instruction(item) or _is_summary(item):
            continue
        else:
            break
    spoken = [_output_text(o) for o in reversed(outputs)]
    return " ".join(t for t in spoken if t) or "Done."


def _is_instruction(item: llm.ChatItem) -> bool:
    return isinstance(item, llm.ChatMessage) and item.role in ("system", "developer")


SUMMARY_TAG: Final = "<chat_history_summary>"
"""How livekit-agents marks the summary a TaskGroup leaves in the history: context, not a
turn (an OpenAI request may list it after the tool output it summarises)."""


def _is_summary(item: llm.ChatItem) -> bool:
    return isinstance(item, llm.ChatMessage) and (item.text_content or "").startswith(SUMMARY_TAG)


def _output_text(output: llm.FunctionCallOutput) -> str:
    text = output.output.strip()
    if output.is_error and text.startswith(INTERNAL_ERROR):
        return "Sorry, something went wrong on my side. Could you say that again?"
    return text


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

"""Does the caller ask for a person or a manager, threaten legal action, or is someone in
danger? Read from the words alone, with no model.

Precision comes first: a near miss must not hand the caller to someone else. So a word is
never enough on its own; what counts is how it is used:

- A request needs a request frame that governs the noun ("I want", "let me talk to",
  "put me through to", "can I get", "is there a ..."), or the noun alone as the whole
  clause ("Representative.", "Manager, please."). "The agent I spoke to said..." has no
  frame; "Can I add a person to my plan?" has a frame ("can I") that governs another verb.
- Third parties are not requests: "my account manager", "the office manager", "my mobile
  operator", "Sue from your office" (a name, not the verb), "I'm a supervisor at...".
- Negation cancels a request in its clause ("I don't need a manager"), except where it is
  a complaint about not getting one ("why can't I talk to a person?").
- Other senses of the words do not count: "human error", "agent login", "gas bill",
  "this bill is killing me", "emergency contact".

Classes, strongest first: ``safety`` outranks ``legal``, which outranks a request for a
``person``, which outranks a request for a ``manager``.
"""

from __future__ import annotations

import re
from typing import Final, Literal

from switchboard.voice.understanding.clauses import clauses

Escalation = Literal["safety", "legal", "person", "manager"]
ESCALATIONS: Final[tuple[Escalation, ...]] = ("safety", "legal", "person", "manager")


def _any(*patterns: str) -> str:
    return "(?:" + "|".join(patterns) + ")"


# Negations that cancel what follows in the same clause.
_NEGATION = re.compile(
    r"\b(?:not|no|never|nobody|without|nothing)\b(?! (?:more|longer)\b)|\bcannot\b"
)
# "Why can't I talk to a person?", "I can't get through to a human": complaints, not refusals.
_COMPLAINT = re.compile(
    r"\b(?:why|how come) (?:can|do|will|does|would)? ?(?:not|cannot)\b|\bcannot i\b"
    r"|\bcannot (?:get|reach|find|get through to|get hold of|speak to|talk to)\b"
    r"|\bnot (?:a|another|some) (?:robot|machine|bot|computer|recording|ai)\b"
)

_GAP = (
    r"(?:(?:a|an|the|your|some|one|of|to|with|through|me|us|just|please|real|actual|"
    r"live|proper|human|another|other|different|like|someone|somebody|from|on|line|now|"
    r"right|customer|service|support|senior|more|quick|word|least|at|member|members|"
    r"staff|this|that|call|phone|team|duty|general) ){0,5}"
    # One free modifier before a job title: "a floor manager", "a shift supervisor".
    r"(?:[a-z-]+ (?=(?:managers?|supervisors?|agents?|representatives?|reps?)\b))?"
)

# Verbs and phrases that ask for someone; the person noun must follow within a few
# filler words (``_GAP``), so the frame governs the noun.
_FRAME = _any(
    r"want",
    r"wanted to",
    r"need",
    r"needs",
    r"would like",
    r"would rather",
    r"would prefer",
    r"prefer",
    r"like to",
    r"let me",
    r"let us",
    r"get me",
    r"get",
    r"give me",
    r"(?:can|could|may) i (?:please |just )?have",
    r"have a (?:word|chat|yarn|talk) with",
    r"raised? (?:this|it)? ?with",
    r"raised? (?:this|it)? ?to",
    r"(?:a )?call ?back from",
    r"(?:a )?call from",
    r"put me on with",
    r"put me on to",
    r"hook me up with",
    r"pass me (?:over |on )?to",
    r"put me",
    r"put",
    r"bring",
    r"transfer(?:red)? (?:me|my call|the call|this call|us)",
    r"transferred",
    r"connect(?:ed)? (?:me|my call|the call|this call|us)",
    r"connected",
    r"demand",
    r"insist on",
    r"ask for",
    r"asking for",
    r"request",
    r"speak",
    r"speaking",
    r"talk",
    r"talking",
    r"chat",
    r"chatting",
    r"deal with",
    r"go to",
    r"goes to",
    r"send (?:this|it|me)(?: up)? to",
    r"bump (?:this|it|me)(?: up)? to",
    r"bumped up to",
    r"pass (?:this|it|me)(?: up| on)? to",
    r"hand (?:this|it|me)(?: over)? to",
    r"is there",
    r"are there",
    r"is there not",
    r"where is",
    r"who is",
    r"escalate (?:this|it|me|the call|this call|my call|the matter|my complaint)?",
    r"complaint with",
    r"complaint to",
    r"complain to",
    r"file a complaint with",
    r"file a complaint to",
)
_PERSON_NOUN = _any(
    r"human beings?",
    r"humans?",
    r"real (?:person|people)",
    r"live (?:person|agent|representative|rep|operator)",
    r"actual (?:person|people|human|agent)",
    r"persons?",
    r"people",
    r"representatives?",
    r"reps?",
    r"agents?",
    r"operators?",
    r"someone real",
    r"somebody real",
    r"staff",
    r"members? of (?:staff|your team|the team)",
    r"employees?",
    r"customer (?:service|care|support)(?: (?:executive|person|officer|team|staff|advisor|"
    r"adviser|executives|people))?",
    r"advisors?",
    r"advisers?",
    r"colleagues?",
    r"(?:(?:tech|support|service|customer) ){0,2}(?:guys?|folks|lads|ladies|gentlemen|"
    r"team members?)",
    r"a real one",
    r"someone",
    r"somebody",
    r"anyone",
    r"anybody",
    r"whoever",
)
_MANAGER_NOUN = _any(
    r"managers?",
    r"management",
    r"supervisors?",
    r"superiors?",
    r"boss",
    r"(?:whoever|who) is in charge",
    r"(?:guy|person|one|lady|man|woman|bloke|fella) in charge",
    r"(?:someone|somebody|anyone|anybody) in management",
    r"senior (?:officer|staff|person|member of staff|agent|representative|member(?: of (?:the|"
    r"your) team| of staff)?)",
    r"head of (?:\w+ )?\w+",
    r"(?:whoever|who) runs (?:that|the|this|your) (?:\w+ )?\w+",
    r"top dog",
    r"chief",
    r"(?:the )?most senior (?:person|one|member of staff|staff member|agent)",
    r"(?:someone|somebody|anyone) who can (?:actually |really )?(?:make (?:a )?decisions?|"
    r"decide|approve|authori[sz]e|override|sign off)",
    r"head honcho",
    r"big boss",
    r"(?:whoever|who) runs (?:the show|this place|the place|the company|things)",
    r"(?:someone|somebody|anyone|anybody) (?:higher|more senior|senior|above)",
    r"(?:someone|somebody|anyone|anybody|a person) (?:with|who has) (?:actual |more |real |"
    r"proper |the )?(?:authority|power)",
    r"(?:someone|somebody|anyone|anybody|a person|the person|one) in charge",
    r"(?:someone|somebody|anyone|anybody) (?:higher up|above you|more senior|senior)",
    r"(?:someone|somebody|anyone|anybody) with more (?:authority|power)",
    r"higher up",
    r"team (?:leader|lead)",
    r"head of (?:department|customer service|the department)",
)
# The nouns above when they name a third party or something else.
_NOT_A_REQUEST_BEFORE = re.compile(
    r"\b(?:my|our|his|her|their|its|mobile|network|tour|phone|cable|account|office|property|"
    r"project|product|store|shop|branch|hiring|building|facilities|case|bank|regional|"
    r"sales|travel|radio|machine|tower|crane|forklift|i am a|i am an|i am the|i work as a|"
    r"i work as an|as a|as an|was a|is a|is my|was my)$"
)
_NOT_A_REQUEST_AFTER = re.compile(
    r"^(?:error|errors|resources|body|rights|nature|version|login|log in|portal|code|id|"
    r"number|account|access|app|software|license|licence|fee|fees|line number|mode|"
    r"at work|at my|in my|from my|on my|in sales|in billing|in support|in technical|"
    r"from sales|from billing|from support|for sales|for billing|i (?:spoke|talked)|"
    r"said|told|was|were|has|had|already|yesterday|last|earlier|before|on the last|"
    r"approved|promised|sold|set up|installed|handles|pays|wants|asked|is on|is in|told|"
    r"called|answered|rang|phoned|came|helped|fixed|gave|explained|emailed|hung up|"
    r"'s|in charge|in management|higher|above|with more|with actual|with real|"
    r"who can (?:actually |really )?(?:make|decide|approve|authori|override|sign)|"
    r"to be|to come|to sign|to let|to answer|to collect|to meet|at home|home|runs|"
    r"with the authority|"
    r"with authority|who has|more senior|senior)\b"
)
_PERSON_REQUEST = re.compile(rf"\b{_FRAME} {_GAP}(?P<noun>{_PERSON_NOUN})\b")
# "A real person" is itself a request, wherever it sits ("can I have a yarn with a real
# person"), unless it describes someone ("your technician was a real person").
_STRONG_PERSON = re.compile(
    r"(?<!was )(?<!is )(?<!am )(?<!are you )(?<!was not )(?<!be )\b(?:a|an|some) (?:real|actual|"
    r"live) (?:person|human|human being|people|agent)\b"
    # "...to one of the ladies who work there", "someone who actually works for you"
    r"|\b(?:to|with) (?:one of |someone |somebody |a person )?(?:the |your )?(?:\w+ ){0,5}"
    r"(?:who|that) (?:actually |really )?works? (?:there|here|for you|for the company|at)\b"
)
# "Are you a real person? If not I want one."
_WANT_ONE = re.compile(
    r"\b(?:want|need|get me|give me|talk to|speak to|speak with) (?:a real )?one\b"
)
_ASKS_IF_PERSON = re.compile(
    r"\bare you (?:a |an )?(?:real|actual|human|person|bot|robot|machine|computer|ai)\b"
)
_DEFINITE_RELATIVE = re.compile(r"\bthe (?:[a-z]+ )?$")
_RELATIVE = re.compile(r"^(?:who|that|whom)\b")
# Not wanting the machine is wanting a person: "I don't want to talk to a bot".
_NOT_A_MACHINE = re.compile(
    r"\b(?:not|no longer|never) (?:want to |wanna |going to |like to )?(?:talk|speak|deal|chat)"
    r"(?:ing)? (?:to|with) (?:a |an |the |this |some |your )?(?:machine|robot|bot|computer|ai|"
    r"automated \w+|recording|recorded \w+)\b"
    r"|\b(?:done|finished|fed up|sick|tired) (?:\w+ ){0,2}(?:with|of) (?:this |the |a |your |"
    r"talking to (?:a |the |this )?)?(?:machine|robot|bot|computer|ai|automated \w+)\b"
)
_MANAGER_REQUEST = re.compile(rf"\b{_FRAME} {_GAP}(?P<noun>{_MANAGER_NOUN})\b")
_BARE = (
    r"(?:(?:a|an|the|your|please|now|just|real|actual|live|ok|okay|hello|hi|hey|like|"
    r"yes|no|i said|get|right) )*"
)
_BARE_PERSON = re.compile(
    rf"^{_BARE}(?P<noun>(?:(?:customer (?:service|care|support)|human|real|live|actual) )?"
    r"(?:human beings?|humans?|a person|person|representatives?|reps?|agents?|operators?|"
    r"executives?|customer service|someone real|a real human|an actual human|a human))"
    r"(?: (?:please|now|right now|thanks|thank you|already|again|this is not working|"
    r"operator|agent|human|representative))*$"
)
_BARE_MANAGER = re.compile(
    rf"^{_BARE}(?P<noun>managers?|supervisors?|your (?:manager|supervisor|boss)|"
    r"the manager|a manager|a supervisor)(?: (?:please|now|right now|thanks|thank you|"
    r"already|again|or whatever|or someone|or something|or anyone|or somebody))*$"
)
_ESCALATE = re.compile(
    r"\b(?:escalate|escalated|escalating) (?:this|it|me|the call|this call|my call|my case|"
    r"this issue|the issue|my complaint|this complaint|the matter|this matter)\b"
    r"|\b(?:want|need|like) (?:this|it|my complaint|the issue) escalat(?:ed|ing)\b"
    r"|\bescalate (?:this|it)? ?to\b|\bescalate$|\bescalate please\b"
    r"|\bup the (?:chain|ladder)\b|\bbump (?:this|it|me) up\b"
    r"|\bgo over (?:your|his|her|their) heads?\b|\bhigher up than you\b"
    r"|\b(?:raise|take|move|bump|kick|escalate) (?:this|it|my complaint|the matter) (?:up )?to "
    r"(?:the )?next level\b"
)

_LAWYER = r"(?:lawyers?|attorneys?|solicitors?|legal team|legal counsel|legal aid|(?<=my )brief)"
_REGULATOR = (
    r"(?:fcc|ftc|ombudsman|regulators?|attorney general|better business bureau|bbb|"
    r"consumer protection|trading standards|ofcom|state attorney|public utilit(?:y|ies) "
    r"commission|public service commission|utilities commission|puc|cfpb|"
    r"consumer (?:affairs|protection) (?:agency|bureau|office|department)|tio|acma|accc|"
    r"telecommunications industry ombudsman|consumer court|consumer tribunal|"
    r"small claims tribunal|crtc|ccts|cisr|ofgem|ombudsman services|off com|comreg|ofwat)"
)
_LEGAL = re.compile(
    _any(
        r"\bsuing\b",
        r"\blawsuits?\b",
        r"\blegal (?:action|steps|measures|recourse|proceedings|route)\b",
        r"\bclass action\b",
        r"\b(?:take|taking|took|drag|dragging|haul|hauling|bring|bringing|see|seeing) "
        r"(?:\w+ ){1,3}(?:all the way )?(?:to|into|in) (?:the )?court\b",
        r"\bletter before (?:action|claim)\b",
        r"\bcease and desist\b",
        rf"\b{_REGULATOR} (?:will|is going to|are going to|is|are|shall) (?:be )?(?:hearing|hear|"
        r"getting|get|receiving|receive)\b",
        r"\bfile (?:a|an) (?:case|claim|suit|lawsuit) (?:in|with|at|against)\b",
        rf"\b(?:notes|evidence|records|recording|documenting|documentation|screenshots|"
        rf"everything) (?:\w+ ){{0,4}}for (?:my|our) {_LAWYER}",
        rf"\bletter from (?:my|our|the|a) (?:{_LAWYER}|{_REGULATOR})",
        r"\bsee you in court\b",
        r"\b(?:going|go|take this|taking this|taking it|take it) to (?:small claims )?court\b",
        r"\bsmall claims\b",
        r"\bsettle (?:this|it) in court\b",
        r"\bfile a (?:claim|suit|lawsuit) against\b",
        rf"\b(?:call|calling|called|ring|ringing|rang|phone|phoning|phoned|contact|contacting|"
        rf"contacted|get|getting|got|speak to|"
        rf"speaking to|spoken to|spoke to|talk to|talking to|talked to|consult|consulting|"
        rf"consulted|involve|involving|phone|ring|email|emailing|hire|hiring|hired|retain|"
        rf"retaining|retained) (?:my|a|an|our) {_LAWYER}",
        rf"\b(?:my|our) {_LAWYER} (?:will|is going to|are going to|would|shall)\b",
        rf"\b(?:hear|hearing|letter|call|calls|email) from (?:my|our) {_LAWYER}",
        rf"\b(?:hear|hearing) from (?:the )?{_REGULATOR}\b",
        rf"\b(?:passing|pass|passed|handing|hand|handed|sending|send|sent|forwarding|forward|"
        rf"giving|give) (?:\w+ ){{0,3}}to (?:my|our|a) {_LAWYER}",
        r"\b(?:making|make|file|filing|lodge|lodging|bring|bringing) (?:a )?claims? against "
        r"(?:you|your company|the company|you guys)\b",
        rf"\bhave my {_LAWYER} (?:call|contact|write|look)\b",
        rf"\b{_LAWYER} involved\b",
        rf"\bmy {_LAWYER} is going to hear\b",
        r"\b(?:report|reporting|complain|complaining|complaint|complaints|contact|contacting|"
        r"file|filing|lodge|lodging|write|writing|going|go|goes|went|take|taking|took|escalate|"
        r"escalating|bring|bringing) (?:\w+ ){0,4}(?:to|with) (?:the |my |"
        rf"our )?(?:\w+ )?{_REGULATOR}\b",
        rf"\b(?:contact|contacting|report|reporting|call|calling|tell|telling) (?:the )?"
        rf"{_REGULATOR}\b",
        rf"\b{_REGULATOR} complaint\b",
    )
)
# "sue" the verb, not Sue the person: it follows a modal or "to", or takes an object.
_SUE = re.compile(
    r"\b(?:to|will|would|could|can|might|should|shall|may|must|going to|gonna|i|we|and) sue\b"
    r"|\bsue (?:you|your|u|the company|this company|them|over|for|if|anyone|"
    r"everyone|everybody)\b"
)
# Someone suing the caller is not the caller threatening us.
_SUED = re.compile(r"\b(?:sue|suing|sued) (?:me|us|my)\b")

_SAFETY = re.compile(
    _any(
        r"\bkill(?:ing)? (?:myself|my self)\b",
        r"\b(?:end|ending|take|taking) my (?:own )?life\b",
        r"\bend(?:ing)? it all\b",
        r"\bsuicid\w*",
        r"\b(?:hurt|hurting|harm|harming|cut|cutting) myself\b",
        r"\bself[- ]harm\w*",
        r"\bwant to die\b",
        r"\bwish i (?:was|were) dead\b",
        r"\bbetter off dead\b",
        r"\bbetter off without me\b",
        r"\bnot (?:waking|wake) up\b",
        r"\b(?:do not|no longer) want to (?:live|be alive|be here)\b",
        r"\bno (?:point|reason) (?:in )?(?:living|to live|going on)\b",
        r"\bthreaten(?:s|ed|ing)? (?:me|us|my \w+|to (?:hurt|kill|harm|hit|beat|punch|attack|"
        r"shoot|stab|smash))\b",
        r"\b(?:am|are|is|we are|i am|be) in danger\b",
        r"\b(?:scared|afraid|fear|fearing|terrified) for (?:my|our|his|her|their) (?:life|lives|"
        r"safety)\b",
        r"\b(?:will|would|going to|gonna|wants to|want to|threatened to|tried to|try to|said "
        r"he would|said she would) (?:kill|hurt|attack|shoot|stab) (?:me|us|my)\b",
        r"\bbreak(?:ing)? in(?:to)? (?:my|our|the) (?:house|home|flat|apartment)\b",
        r"\bbreaking into\b",
        r"\bbreak-in\b",
        r"\bbeing (?:followed|attacked|stalked|hurt|abused)\b",
        r"\b(?:hitting|beating|attacking|choking) me\b",
        r"\boverdos\w*",
        r"\btoo many pills\b",
        r"\b(?:cannot|can not|could not|not) breath(?:e|ing)\b",
        r"\bchest pains?\b",
        r"\bheart attack\b",
        r"\bunconscious\b",
        r"\bnot responding\b(?= (?:to me|and))",
        r"\bambulance\b",
        r"\bbleeding (?:badly|a lot|heavily)\b",
        r"\bsmell(?:s|ing)? (?:of )?gas\b",
        r"\bgas (?:leak|leaking|smell)\b",
        r"\bleaking gas\b",
        r"\b(?:on|caught|catching|catch) fire\b",
        r"\b(?:will|would|going to|gonna|am going to|want to|could) (?:\w+ ){0,7}(?:hurt|kill|"
        r"attack|shoot|stab|beat up|strangle|punch|smash|batter|hit) (?:someone|somebody|people|"
        r"him|her|them|you|your \w+|the \w+|everyone|everybody|someones?|somebodys?)\b",
        r"\bbeat (?:him|her|them|you|someone|somebody|the \w+) up\b",
        r"\bburn (?:your|the|this|their|his|her) (?:\w+ )?(?:down|to the ground)\b",
        r"\b(?:with|has|holding|pulled|carrying|waving) (?:a|an) (?:knife|gun|weapon|firearm|"
        r"machete|bat)\b",
        r"\b(?:got|getting|been|get) (?:electric |badly )?(?:shocked|electrocuted)\b",
        r"\b(?:exposed|live|bare|sparking) wires?\b",
        r"\btrying to (?:get|break|climb) in\b",
        r"\bsmoke (?:everywhere|is coming|coming out|pouring|filling)\b",
        r"\b(?:there is|i see|i can see|full of|lot of|lots of) smoke\b",
        r"\b(?:co|smoke|carbon monoxide|gas) (?:detector|alarm)s? (?:is |are |keeps |keep )?"
        r"(?:going off|beeping|sounding|ringing)\b",
        r"\b(?:dizzy|fainted|passed out|collapsed|seizure|stroke)\b",
        r"\bmelting\b",
        r"\b(?:i am|we are|i do not feel|we do not feel|i am not|we are not) (?:not )?(?:safe|"
        r"unsafe)\b(?! (?:with|to|about|paying|buying|using|giving|sharing))",
        r"\b(?:scared|afraid|terrified|frightened)\b.*\b(?:outside|banging|at the door|"
        r"following me|after me|hurt me|kill me|hit me|attack)",
        r"\b(?:outside|banging|at the door|following me|after me)\b.*\b(?:scared|afraid|"
        r"terrified|frightened)\b",
        r"\b(?:got|get|getting|had) a (?:bad |nasty |big |electric )?shock (?:off|from) "
        r"(?:the|a|my) (?!bill|price|invoice|charge|cost|amount|total|statement)\w+",
        r"\b(?:scorch(?:ed|ing)?(?: marks?)?|charred|singed|melted)\b",
        r"\b(?:waters?|flood|flooding|leak|leaking|rain) (?:\S+ ){0,7}(?:power board|power "
        r"points?|sockets?|outlets?|electrics|fuse box|fuse board|wiring|switchboard|plugs?|"
        r"power strip)\b",
        r"\bcannot go on(?: like this)?(?: anymore| any more| any longer)?$",
        r"\bcannot go on like this\b",
        r"\b(?:nobody|no one|no-one) would (?:even )?(?:miss|notice|care about) me\b",
        r"\bif i (?:was|were) (?:gone|dead|not here|not around)\b",
        r"\b(?:see|see the|is the|what is the) point (?:of|in) (?:living|life|going on|"
        r"being alive|anything)\b",
        r"\b(?:a|there is a|there is) fire (?:in|at|near|outside|inside|next to|behind)\b",
        r"\b(?:taken|took|swallowed|take) (?:a load of|a lot of|a bunch of|loads of|all (?:my|"
        r"the|of my)|too many) (?:pills|tablets|meds|medication|medicine)\b",
        r"\b(?:touched|touching|grabbed) (?:the|a) (?:\w+ ){0,2}(?:cable|wire|outlet|socket|"
        r"plug|box|router|modem) (?:and )?(?:got|get|gets) (?:a )?(?:bad |electric )?shock\b",
        r"\b(?:he|she|they|it|he is|she is|they are|is|are) (?:not responding|unresponsive)\b",
        r"\b(?:got|has|have|holding) (?:a|an) (?:knife|gun|weapon|firearm|machete)\b",
        r"\b(?:smoke|sparks|flames) (?:is |are )?(?:coming|pouring)\b",
        r"\bsparking\b",
        r"\bflames?\b",
        r"\bmaking fire\b",
        r"\bsparks (?:coming|flying)\b",
        r"\belectric(?:al)? shock\b",
        r"\belectrocuted\b",
        r"\bcarbon monoxide\b",
        r"\b(?:something|it|the \w+) (?:is )?burning\b",
        r"\bburning smell\b",
        r"\bsmells? (?:like )?(?:something )?burning\b",
    )
)
# Figures of speech that use the same words: taken out before looking for danger.
_SAFETY_IDIOMS = re.compile(
    r"\b(?:wifi|internet|speed|speeds|connection|signal|plan|deal|deals|price|prices|offer|"
    r"service|network|team|you|i|we|broadband|fibre|fiber|sales|it) (?:is|are|was|am|has been)"
    r" (?:\w+ )?on fire\b"
    r"|\b(?:nearly|almost) (?:had|have|gave me|give me|giving me) a heart attack\b"
    r"|\bshoot (?:you|me|him|her|them|us) (?:an?|the|over|across) (?:\w+ )?(?:email|e-mail|"
    r"text|message|note|line|photo|picture|copy|quote|link)\b"
    r"|\bon fire (?:today|lately|tonight|this (?:week|month|morning|year)|with \w+)\b"
)
_EMERGENCY = re.compile(
    r"\b(?:this|it|that|there) is an emergency\b|\b(?:we|i) have an emergency\b"
    r"|^(?:help )?(?:this is )?(?:an )?emergency(?: please| help)?$"
    r"|\bmedical emergency\b|\bcall (?:an )?emergency services\b"
)


_INTERJECTION = re.compile(
    r"^(?:(?:yes|ok|okay|well|oh|um|uh|so|look|listen|hey|hello|hi|like|honestly) )*"
    r"(?:no (?=(?:i|we|just|please|let|get|put|give|can|could|you|thanks|thank)\b))?"
)
_BRIDGE = frozenset(
    [
        "need",
        "needs",
        "to",
        "going",
        "gonna",
        "really",
        "even",
        "actually",
        "have",
        "think",
        "i",
        "want",
        "wanna",
        "asking",
        "ask",
        "for",
        "be",
        "being",
        "a",
        "an",
        "the",
        "any",
        "threatening",
        "planning",
        "trying",
        "intending",
        "intend",
        "plan",
        "try",
    ]
)
"""Words that may stand between a negation and what it cancels ("I don't really need",
"no need to get", "not going to sue"); any other word ends its reach ("don't record this,
just get me a manager")."""


def _negated(clause: str, start: int) -> bool:
    """Whether a negation right before ``start`` cancels what is there. A clause-initial
    "no" is an interjection ("No I want a manager"), not a negation."""
    before = _INTERJECTION.sub("", clause[:start])
    if _COMPLAINT.search(before):
        return False
    # "If this isn't fixed I'm going to court": the negation is the condition's.
    before = re.sub(r"\b(?:if|unless|until)\b.*", "", before)
    words = before.split()
    for i in range(len(words) - 1, -1, -1):
        if _NEGATION.fullmatch(words[i]) or words[i] in ("no", "not", "never", "cannot"):
            return True
        if words[i] not in _BRIDGE:
            return False
    return False


# The frame's subject is someone else ("my daughter wants to speak to someone"), or the
# words are reported ("he said I'd have to escalate it").
_SOMEONE_ELSE = re.compile(
    r"\b(?:he|she|they|my \w+|his \w+|her \w+|our \w+|their \w+|the \w+) (?:also |really |"
    r"just )?(?:(?:wants|needs|would like|wanted|needed|asked|is asking|has asked|is hoping)"
    r"(?: to)? )?$"
)
_REPORTED = re.compile(
    r"\b(?:said|says|told me|told us|tells me|mentioned|suggested|reckons|reckoned|thinks|"
    r"thought|advised me|recommended)\b"
    # What the caller told someone else before ("I told the last guy I'd sue"), not now.
    r"|\bi told (?:the|him|her|them|that|my|your last)\b"
)


def _reported(clause: str, start: int) -> bool:
    before = clause[:start]
    return bool(_SOMEONE_ELSE.search(before) or _REPORTED.search(before))


def _request(
    pattern: re.Pattern[str],
    bare: re.Pattern[str],
    clause: str,
    not_before: re.Pattern[str] | None = None,
) -> bool:
    if bare.match(clause):
        return True
    for match in pattern.finditer(clause):
        if _reported(clause, match.start()):
            continue
        start, end = match.span("noun")
        before = clause[:start].rstrip()
        if _NOT_A_REQUEST_BEFORE.search(before):
            continue
        if not_before is not None and not_before.search(before):
            continue
        after = clause[end:].lstrip()
        if _NOT_A_REQUEST_AFTER.match(after):
            continue
        if _RELATIVE.match(after) and _DEFINITE_RELATIVE.search(clause[:start]):
            continue
        if _negated(clause, match.start()):
            continue
        return True
    return False


def _any_unnegated(pattern: re.Pattern[str], clause: str) -> bool:
    return any(
        not _negated(clause, m.start()) and not _reported(clause, m.start())
        for m in pattern.finditer(clause)
    )


def _safety(clause: str) -> bool:
    # Self-harm phrases count even after a negation ("I don't want to live"): a false
    # alarm here costs a transfer, a miss can cost a life.
    literal = _SAFETY_IDIOMS.sub(" ", clause)
    return bool(_SAFETY.search(literal)) or _any_unnegated(_EMERGENCY, literal)


def _legal(clause: str) -> bool:
    if _SUED.search(clause):
        return False
    return _any_unnegated(_LEGAL, clause) or _any_unnegated(_SUE, clause)


_AUTHORITY = re.compile(
    r"\b(?:someone|somebody|anyone|anybody|a person|people) (?:with|who has|who have) "
    r"(?:actual |more |real |proper |the |some )?(?:authority|power|clout)\b"
    r"|\b(?:who|whoever) is (?:in charge|the boss|the manager|your manager|your boss)\b"
    r"(?! of (?:the|my|this|our) (?:account|bill|billing|payments?|contract))"
    r"|\bwho (?:can|could) i (?:talk|speak) to (?:\w+ )?(?:that|who) (?:can|could) (?:actually )?"
    r"(?:make (?:a )?decisions?|decide|fix this|sort this)\b"
    rf"|\b{_MANAGER_NOUN} (?:\w+ ){{0,2}}(?:i|we) (?:could|can|may|might) (?:have a (?:quick )?"
    r"(?:word|chat)|speak|talk)\b"
)


def _manager(clause: str) -> bool:
    return (
        _request(_MANAGER_REQUEST, _BARE_MANAGER, clause)
        or _any_unnegated(_ESCALATE, clause)
        or _any_unnegated(_AUTHORITY, clause)
    )


def _strong_person(clause: str) -> bool:
    for match in _STRONG_PERSON.finditer(clause):
        if _NOT_A_REQUEST_AFTER.match(clause[match.end() :].lstrip()):
            continue  # "a real person told me..." describes someone
        if _reported(clause, match.start()):
            continue
        if not _negated(clause, match.start()):
            return True
    return False


# "A senior member of the team" asks for seniority: a manager, not any person.
_SENIOR = re.compile(r"\b(?:senior|more senior|most senior)(?: \w+){0,3}$")


def _person(clause: str) -> bool:
    return (
        _request(_PERSON_REQUEST, _BARE_PERSON, clause, not_before=_SENIOR)
        or bool(_NOT_A_MACHINE.search(clause))
        or _strong_person(clause)
    )


def classify(text: str) -> Escalation | None:
    """The strongest escalation an utterance asks for, or ``None``."""
    parts = clauses(text)
    if any(_ASKS_IF_PERSON.search(c) for c in parts) and any(
        _any_unnegated(_WANT_ONE, c) for c in parts
    ):
        parts.append("i want a real person")
    for name, test in (
        ("safety", _safety),
        ("legal", _legal),
        ("person", _person),
        ("manager", _manager),
    ):
        if any(test(clause) for clause in parts):
            return name  # type: ignore[return-value]
    return None

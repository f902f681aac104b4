"""Human transfers from the voice worker's side: the caller on hold, the consult room and
its briefing session, and the flow that follows the sip-bridge until a person takes the
call."""

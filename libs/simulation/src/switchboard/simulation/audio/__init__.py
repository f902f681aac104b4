"""Audio mode: scripted calls spoken through the session's real audio path.

The caller's lines become speech (``voices``) fed by a microphone on a clock (``mic``); the
agents' speech is played by a speaker on the same clock that can be paused and cut
(``speaker``); ``play`` drives a scenario through them. Silero VAD, the session's turn and
interruption handling and the OpenAI STT/TTS plugin classes are the production ones; the
speech services behind the plugins are the scripted OpenAI-compatible server.
"""

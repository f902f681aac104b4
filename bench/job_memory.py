"""Memory one call costs a voice worker pod, against bare livekit-agents in the same run.

In production LiveKit runs every call in its own job process. On Linux the worker forks
them from a forkserver that has preloaded the plugin packages and frozen what they
imported, so the pages those imports made are shared copy-on-write between job
processes and RSS overstates each one. This starts job processes the same way
(``forkserver``, the same preload list the worker passes to ``set_forkserver_preload``)
and reads each one's PSS (shared pages divided among their sharers) and USS (private
pages) after its warm-up, for two kinds of job:

- **bare** — what any livekit-agents voice agent loads: livekit-agents, the OpenAI,
  ElevenLabs and Silero plugins, and the Silero VAD model;
- **switchboard** — our job process: the same, plus the voice worker's modules, and its
  own warm-up (``switchboard.voice.worker.prewarm``: logging filter, tracing, VAD,
  collector settings).

Calls in progress add little on top (the voice benchmark measures RSS per live session);
what sizes a pod is this per-process figure times the calls it takes, plus the worker's
main process and its idle processes. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import multiprocessing.synchronize
import sys
import types
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

PLUGINS = ["livekit.plugins.openai", "livekit.plugins.elevenlabs", "livekit.plugins.silero"]
# What livekit-agents 1.8 appends after the plugins (worker.py, forkserver branch).
FRAMEWORK_PRELOAD = ["livekit.agents.ipc._preload", "livekit.agents.ipc._preload_freeze"]
KINDS = ("bare", "switchboard")


def _warm_up(kind: str) -> None:
    if kind == "bare":
        from livekit.plugins import silero

        silero.VAD.load()
        return
    from switchboard.voice import worker

    # prewarm reads only ``userdata`` from the JobProcess it is given.
    worker.prewarm(types.SimpleNamespace(userdata={}))  # type: ignore[arg-type]


def _job(kind: str, ready: Connection, stop: multiprocessing.synchronize.Event) -> None:
    _warm_up(kind)
    ready.send("warm")
    stop.wait()


def footprint_kb(pid: int) -> dict[str, int]:
    """RSS, PSS and USS (private clean + dirty) of a process, from the kernel's rollup."""
    fields: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, value = line.split(":", 1)
        fields[name] = int(value.split()[0])
    return {
        "rss": fields["Rss"],
        "pss": fields["Pss"],
        "uss": fields["Private_Clean"] + fields["Private_Dirty"],
    }


def _mb(total_kb: int, jobs: int) -> float:
    return round(total_kb / jobs / 1024, 1)


def measure(kind: str, jobs: int) -> dict[str, Any]:
    """Start ``jobs`` warm job processes of ``kind`` from one forkserver and read them."""
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(PLUGINS + FRAMEWORK_PRELOAD)
    stop = ctx.Event()
    procs: list[tuple[Any, Connection]] = []
    try:
        for _ in range(jobs):
            mine, theirs = ctx.Pipe(duplex=False)
            proc = ctx.Process(target=_job, args=(kind, theirs, stop), daemon=True)
            proc.start()
            procs.append((proc, mine))
        for _, conn in procs:
            if not conn.poll(120):
                raise RuntimeError(f"a {kind} job process did not warm up in 120 s")
            conn.recv()
        infos = [footprint_kb(p.pid) for p, _ in procs]
    finally:
        stop.set()
        for proc, _ in procs:
            proc.join(10)
    return {
        "jobs": jobs,
        **{f"{m}_mb_per_job": _mb(sum(i[m] for i in infos), jobs) for m in ("pss", "uss", "rss")},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=4, help="job processes per kind")
    args = parser.parse_args(argv)
    figures: dict[str, Any] = {}
    for kind in KINDS:
        figures[kind] = measure(kind, args.jobs)
        print(f"{kind:>12}: {figures[kind]}", flush=True)
    bare, ours = figures["bare"], figures["switchboard"]
    figures["pss_ratio"] = round(ours["pss_mb_per_job"] / bare["pss_mb_per_job"], 2)
    figures["pss_extra_mb_per_job"] = round(ours["pss_mb_per_job"] - bare["pss_mb_per_job"], 1)
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""How well the deterministic understanding reads callers, on the labelled corpus.

``python -m bench.screening [--corpus FILE]`` reads every utterance of the corpus
(``services/voice/corpus/screening.tsv``: class, revokes, text) with no model, as the
screening and the rules brain do, and prints per class precision and recall, the false
escalations among ``none`` utterances, revocation recall and false revocations, what the
screen acts on before a model, and how long a reading takes against a baseline in the same
run (``str.lower`` plus one compiled regular expression search over the same text: the
least any reading costs). The last line printed is one JSON object with the figures.

Targets (issue "The model drives the call"): 0 false escalations on ``none``, recall at
least 0.95 for person, manager and safety, revocation recall at least 0.95 with 0 false
revocations.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from switchboard.voice import understanding

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO / "services" / "voice" / "corpus" / "screening.tsv"
CLASSES = ("none", "person", "manager", "legal", "safety")


@dataclass(frozen=True, slots=True)
class Example:
    label: str
    revokes: bool
    text: str


def load(path: Path) -> list[Example]:
    """The corpus; a malformed line stops the run naming its line number."""
    out = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split("\t")
        if len(parts) != 3 or parts[0] not in CLASSES or parts[1] not in ("0", "1"):
            raise SystemExit(f"{path}:{number}: expected 'class<TAB>0|1<TAB>text'.")
        out.append(Example(parts[0], parts[1] == "1", parts[2]))
    return out


def _ratio(num: int, den: int) -> float | None:
    return round(num / den, 4) if den else None


def measure(examples: list[Example]) -> dict[str, object]:
    got: list[tuple[str, bool]] = []
    pre_model = Counter[str]()
    for ex in examples:
        found = understanding.read(ex.text)
        got.append((found.escalation or "none", found.revokes))
        if found.pre_model:
            pre_model[ex.label] += 1
    recall: dict[str, float | None] = {}
    precision: dict[str, float | None] = {}
    for cls in CLASSES:
        true = sum(1 for ex, (g, _) in zip(examples, got, strict=True) if ex.label == cls)
        hit = sum(
            1 for ex, (g, _) in zip(examples, got, strict=True) if ex.label == cls and g == cls
        )
        predicted = sum(1 for g, _ in got if g == cls)
        recall[cls] = _ratio(hit, true)
        precision[cls] = _ratio(hit, predicted)
    none_total = sum(1 for ex in examples if ex.label == "none")
    false_escalations = sum(
        1 for ex, (g, _) in zip(examples, got, strict=True) if ex.label == "none" and g != "none"
    )
    revoking = sum(1 for ex in examples if ex.revokes)
    revoked = sum(1 for ex, (_, r) in zip(examples, got, strict=True) if ex.revokes and r)
    false_revocations = sum(
        1 for ex, (_, r) in zip(examples, got, strict=True) if not ex.revokes and r
    )
    misses = [
        {"label": ex.label, "revokes": ex.revokes, "got": g, "got_revokes": r, "text": ex.text}
        for ex, (g, r) in zip(examples, got, strict=True)
        if g != ex.label or r != ex.revokes
    ]
    return {
        "utterances": len(examples),
        "per_class": dict(Counter(ex.label for ex in examples)),
        "recall": recall,
        "precision": precision,
        "false_escalations_none": false_escalations,
        "false_escalation_rate_none": _ratio(false_escalations, none_total),
        "revocation_recall": _ratio(revoked, revoking),
        "false_revocations": false_revocations,
        "pre_model_by_class": dict(pre_model),
        "misses": misses,
    }


def timing(examples: list[Example], rounds: int) -> dict[str, float]:
    """Microseconds per utterance: the reading, and a baseline in the same run."""
    baseline = re.compile(r"\b(?:manager|person|lawyer|fire|record)\b")
    texts = [ex.text for ex in examples]

    def per_item(fn: object) -> list[float]:
        samples = []
        for _ in range(rounds):
            start = time.perf_counter()
            for text in texts:
                fn(text)  # type: ignore[operator]
            samples.append((time.perf_counter() - start) / len(texts) * 1e6)
        return samples

    read = per_item(understanding.read)
    base = per_item(lambda text: baseline.search(text.lower()))
    return {
        "read_us_median": round(statistics.median(read), 2),
        "read_us_max_round": round(max(read), 2),
        "baseline_us_median": round(statistics.median(base), 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.screening", description=__doc__)
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--rounds", type=int, default=20, help="timing rounds over the corpus")
    args = parser.parse_args(argv)
    examples = load(args.corpus)
    figures = measure(examples)
    figures.update(timing(examples, args.rounds))
    print(f"{len(examples)} utterances from {args.corpus.name}")
    for cls in CLASSES:
        print(
            f"  {cls:<8} recall {figures['recall'][cls]}  "  # type: ignore[index]
            f"precision {figures['precision'][cls]}"  # type: ignore[index]
        )
    print(f"  false escalations on none: {figures['false_escalations_none']}")
    print(
        f"  revocation recall {figures['revocation_recall']}, "
        f"false revocations {figures['false_revocations']}"
    )
    for miss in figures["misses"]:  # type: ignore[attr-defined]
        print(f"  miss: {miss}")
    print(
        f"  reading: {figures['read_us_median']} µs per utterance "
        f"(baseline regex {figures['baseline_us_median']} µs)"
    )
    print(json.dumps(figures, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

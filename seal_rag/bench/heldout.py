"""The held-out benchmark sets of the data folder, as one shape: passages plus queries with gold ids.

These sets are for reporting only: nothing in training or tuning may read them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .data import data_path

TEXT_SETS = ("squad-holdout", "pubmedqa", "covidqa")
SPEECH_SETS = ("ljspeech-385", "commonvoice-100")
ALL_SETS = TEXT_SETS + SPEECH_SETS


@dataclass
class Query:
    qid: str
    text: str  # the question, or the true transcript of a recording
    gold: frozenset[str]
    audio: Path | None = None  # a real recording, for the speech sets


@dataclass
class HeldOutSet:
    name: str
    passage_ids: list[str]
    passages: list[str]
    queries: list[Query]


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.open() if line.strip()]


def set_folder(name: str, root: Path) -> Path:
    """Where set `name` lives under the data folder `root`; a one-line error if it is not there."""
    if name not in ALL_SETS:
        raise SystemExit(f"unknown set {name!r}: choose from {', '.join(ALL_SETS)}")
    if name == "squad-holdout":
        return data_path(root, "qa", "squad-v1.1-dev")
    return data_path(root, "speech" if name in SPEECH_SETS else "qa", name)


def load_set(name: str, root: Path) -> HeldOutSet:
    """Load one held-out set by name (see `ALL_SETS`) from the data folder `root`."""
    folder = set_folder(name, root)
    if name == "squad-holdout":
        holdout = set(json.loads((folder / "split.json").read_text())["holdout_articles"])
        passages = _jsonl(folder / "passages.jsonl")  # all 2,067: the whole dev knowledge base
        titles = {p["passage_id"]: p["title"] for p in passages}
        queries = [Query(q["qid"], q["question"], frozenset([q["passage_id"]]))
                   for q in _jsonl(folder / "questions.jsonl") if titles[q["passage_id"]] in holdout]
    elif name in ("pubmedqa", "covidqa"):
        passages = _jsonl(folder / "passages.jsonl")
        queries = [Query(str(q["qid"]), q["question"], frozenset(q.get("gold_passage_ids") or [q["passage_id"]]))
                   for q in _jsonl(folder / "questions.jsonl")]
    elif name in SPEECH_SETS:
        passages = _jsonl(folder / "passages.jsonl")
        queries = [Query(Path(q["audio"]).stem, q["transcript"], frozenset([q["passage_id"]]), folder / q["audio"])
                   for q in _jsonl(folder / "queries.jsonl")]
    return HeldOutSet(name, [p["passage_id"] for p in passages], [p["text"] for p in passages], queries)

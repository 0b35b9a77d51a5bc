"""Ask latency per stage, ingest throughput and peak memory, on an index of 10,000+ chunks.

    python -m seal_rag.bench.ask [--chunks 10000] [--queries 50] [--db DIR]

Ingests MedQuAD answers (../shared/data/qa/medquad, a training-and-tuning set) until the
index holds at least `--chunks` chunks, speaks `--queries` of its questions with espeak-ng,
and asks each one in speech and in cascade mode with warm models.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from ..ask import Retriever
from ..chunking import chunk_section
from ..embedding import SpeechEmbedding
from ..ingest import ingest_folder
from ..loaders import Section
from ..store import SealIndex
from .clips import shared_data_dir

ESPEAK_VOICE = "en-us"


def write_corpus(folder: Path, min_chunks: int) -> tuple[int, list[dict]]:
    """Write MedQuAD answers as JSONL until they make `min_chunks` chunks; returns (chunks, questions)."""
    medquad = shared_data_dir() / "qa" / "medquad"
    passages = [json.loads(line) for line in (medquad / "passages.jsonl").open()]
    chunks, kept = 0, []
    for p in passages:
        if chunks >= min_chunks:
            break
        chunks += len(chunk_section(Section("x", "x", p["text"])))
        kept.append(p)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "medquad.jsonl", "w") as f:
        for p in kept:
            f.write(json.dumps({"id": p["passage_id"], "text": p["text"]}) + "\n")
    ids = {p["passage_id"] for p in kept}
    questions = [json.loads(line) for line in (medquad / "questions.jsonl").open()]
    return chunks, [q for q in questions if q["passage_id"] in ids]


def speak(text: str, path: Path) -> bytes:
    subprocess.run(["espeak-ng", "-v", ESPEAK_VOICE, "-w", str(path), text], check=True)
    return path.read_bytes()


def median_ms(rows: list[dict], stage: str) -> str:
    values = [r[stage] for r in rows if stage in r]
    return f"{np.median(values) * 1000:8.1f}" if values else "       -"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog=f"seal-rag bench {__name__.rsplit('.', 1)[-1]}", description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--db", type=Path, default=None, help="keep the index here (default: a temp dir)")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="seal-bench-"))
    db = args.db or work / "db"

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = SpeechEmbedding.from_pretrained()
    expected, questions = write_corpus(work / "docs", args.chunks)
    index = SealIndex.open(model, db, create=True)
    start = time.perf_counter()
    summary = ingest_folder(model, work / "docs", index)
    ingest_seconds = time.perf_counter() - start

    rng = np.random.default_rng(0)
    picked = [questions[i] for i in rng.choice(len(questions), args.queries, replace=False)]
    clips = [speak(q["question"], work / f"q{i}.wav") for i, q in enumerate(picked)]
    stages = ("decode", "features", "encode", "transcribe", "text_embed", "search")
    print(f"index: {index.count()} chunks of D={model.dim} (model trained: {model.trained})")
    print(f"ingest: {summary.added} chunks in {ingest_seconds:.1f} s = {summary.added / ingest_seconds:.1f} chunks/s (embedding + upsert)")
    print(f"queries: {len(clips)} MedQuAD questions spoken by espeak-ng {ESPEAK_VOICE}, warm models, one at a time")
    print(f"{'mode':8s} " + " ".join(f"{s:>10s}" for s in stages) + f" {'total':>10s}   (median ms)")
    for mode in ("speech", "cascade"):
        retriever = Retriever(model, index, mode)
        retriever.retrieve(clips[0], k=10)  # warm-up: first calls allocate
        rows = []
        for clip in clips:
            begin = time.perf_counter()
            timings = retriever.retrieve(clip, k=10).timings
            timings["total"] = time.perf_counter() - begin
            rows.append(timings)
        print(f"{mode:8s} " + " ".join(f"{median_ms(rows, s):>10s}" for s in stages) + f" {median_ms(rows, 'total'):>10s}")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory (max RSS of this process): {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()

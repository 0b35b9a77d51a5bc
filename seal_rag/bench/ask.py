"""Ask latency per stage, ingest throughput and peak memory, on an index of 10,000+ chunks.

    seal-rag bench ask [--chunks 10000] [--queries 50] [--db DIR] [--out benchmarks]

Ingests MedQuAD answers (the data folder's qa/medquad, a training-and-tuning set) until the
index holds at least `--chunks` chunks, speaks `--queries` of its questions with espeak-ng,
and asks each one with warm models, question by question in turn: in speech mode as `ask`
serves it (the index's decoding and keyword re-ranking) and with `--no-keywords` (the vector
alone), in cascade mode as `ask --mode cascade` runs it (faster-whisper base int8, beam 5, 30 s
window), and through the fastest cascade (beam 1, window fitted to the clip). Writes `ask.json`
and `ask.md`. Timings are only meaningful on an otherwise idle machine.
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

from ..retrieve import Retriever, index_keyword_reranker
from ..chunking import chunk_section
from ..embedding import SpeechEmbedding
from ..ingest import ingest_folder
from ..loaders import Section
from ..store import SealIndex
from .data import add_data_argument, data_path, data_root
from .report import model_fields, write_report

ESPEAK_VOICE = "en-us"


def write_corpus(root: Path, folder: Path, min_chunks: int) -> tuple[int, list[dict]]:
    """Write MedQuAD answers as JSONL until they make `min_chunks` chunks; returns (chunks, questions)."""
    medquad = data_path(root, "qa", "medquad")
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


STAGES = ("decode", "features", "encode", "kb_decoding", "search", "keywords", "transcribe", "text_embed", "total")


def median_ms(rows: list[dict], stage: str) -> float | None:
    values = [r[stage] for r in rows if stage in r]
    return float(np.median(values)) * 1000 if values else None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog=f"seal-rag bench {__name__.rsplit('.', 1)[-1]}", description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--db", type=Path, default=None, help="keep the index here (default: a temp dir)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks"))
    add_data_argument(parser)
    args = parser.parse_args(argv)
    root = data_root(args.data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = SpeechEmbedding.from_pretrained()
    with tempfile.TemporaryDirectory(prefix="seal-bench-") as work:
        measure(model, root, Path(work), args)


def measure(model, root: Path, work: Path, args: argparse.Namespace) -> None:
    """Ingest, speak and ask in `work` (the index too, unless --db), then write the report."""
    expected, questions = write_corpus(root, work / "docs", args.chunks)
    index = SealIndex.open(model, args.db or work / "db", create=True)
    if index.count():  # its chunks would join this run's and the figures would mix two corpora
        raise SystemExit(f"{args.db} already holds {index.count()} chunks: pass an empty or new --db")
    start = time.perf_counter()
    summary = ingest_folder(model, work / "docs", index)
    ingest_seconds = time.perf_counter() - start

    rng = np.random.default_rng(0)
    picked = [questions[i] for i in rng.choice(len(questions), args.queries, replace=False)]
    clips = [speak(q["question"], work / f"q{i}.wav") for i, q in enumerate(picked)]
    from ..cascade import Transcriber

    start = time.perf_counter()
    keywords = index_keyword_reranker(model, index)
    keyword_seconds = time.perf_counter() - start
    systems = {"speech (as served)": Retriever(model, index, "speech", keywords=keywords),
               "speech --no-keywords": Retriever(model, index, "speech"),
               "cascade (beam 5, 30 s window)": Retriever(model, index, "cascade", Transcriber()),
               "cascade (beam 1, fitted window)": Retriever(model, index, "cascade", Transcriber(beam_size=1, fit_window=True))}
    rows: dict[str, list[dict]] = {name: [] for name in systems}
    for retriever in systems.values():
        retriever.retrieve(clips[0], k=10)  # warm-up: first calls allocate
    for clip in clips:  # system by system for each question, so all see the same load
        for name, retriever in systems.items():
            begin = time.perf_counter()
            timings = retriever.retrieve(clip, k=10).timings
            timings["total"] = time.perf_counter() - begin
            rows[name].append(timings)
    medians = {name: {stage: median_ms(found, stage) for stage in STAGES} for name, found in rows.items()}
    ratio = medians["speech (as served)"]["total"] / medians["cascade (beam 1, fitted window)"]["total"]
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    # One sentence for the figures that are not per-stage; BENCHMARKS.md prints it above the table.
    summary_line = (f"Index of {index.count()} chunks (D={model.dim}); ingest {summary.added} chunks in {ingest_seconds:.1f} s = "
                    f"{summary.added / ingest_seconds:.1f} chunks/s (embedding + upsert); {len(clips)} MedQuAD questions spoken "
                    f"by espeak-ng {ESPEAK_VOICE}, warm models, one at a time; the index's words read for re-ranking in "
                    f"{keyword_seconds:.1f} s once; speech as served takes {ratio:.2f} of the fitted-window cascade's time; "
                    f"peak memory (max RSS) {peak_mb:.0f} MB.")
    print(summary_line)
    payload = {"benchmark": "ask", "summary": summary_line, "chunks": index.count(), "dim": model.dim, "queries": len(clips),
               "voice": ESPEAK_VOICE, **model_fields(model),
               "ingest_seconds": ingest_seconds,
               "ingest_chunks_per_second": summary.added / ingest_seconds, "keyword_setup_seconds": keyword_seconds,
               "speech_to_fitted_cascade": ratio, "peak_rss_mb": peak_mb, "median_ms": medians}
    table = [[mode] + [f"{ms:.1f}" if ms is not None else "-" for ms in row.values()] for mode, row in medians.items()]
    write_report(args.out, "ask", payload, ["mode (median ms)", *STAGES], table)


if __name__ == "__main__":
    main()

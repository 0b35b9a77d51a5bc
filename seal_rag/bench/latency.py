"""Per-stage latency of SEAL and the cascade, single queries with warm models.

    python -m seal_rag.bench latency [--lengths 2 5 10 20] [--queries 30] [--quick]

Query clips are real human speech cut from the fixtures at each length, stored as FLAC
bytes so decoding is measured too. Both systems search the same Chroma index (the SQuAD
dev passages). Reports median and p95 per stage, the cascade/SEAL ratio of medians measured
in the same run, and SEAL with 30 s padding, to show what real-length encoding buys.
"""

from __future__ import annotations

import argparse
import io
import json
import tempfile
import warnings
from pathlib import Path

import numpy as np
import soundfile as sf

from ..audio import SAMPLE_RATE, load_audio
from ..cascade import Transcriber
from ..embedding import SpeechEmbedding
from ..store import SealIndex
from ..timing import timed
from .clips import fixture_clips
from .data import add_data_argument, data_path, data_root
from .report import model_fields, pyplot, write_report

SYSTEMS = ("seal", "seal-30s-padding", "cascade-greedy", "cascade-beam5", "cascade-fitted")


def flac_bytes(clip: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, clip, SAMPLE_RATE, format="FLAC")
    return buffer.getvalue()


def build_index(model, root: Path, db: Path, limit: int | None) -> SealIndex:
    passages = [json.loads(line) for line in data_path(root, "qa", "squad-v1.1-dev", "passages.jsonl").open()][:limit]
    index = SealIndex.open(model, db, create=True)
    texts = [p["text"] for p in passages]
    index.upsert([p["passage_id"] for p in passages], model.embed_texts(texts, show_progress=True), texts,
                 [{"title": p["title"]} for p in passages])
    return index


def run_seal(model, index, audio: bytes, pad: bool) -> dict:
    stages: dict[str, float] = {}
    with timed(stages, "decode"):
        clip = load_audio(audio)
    vector = model.embed_clips([clip], pad, stages)[0]  # the speech path's own staged encode
    with timed(stages, "search"):
        index.query(vector, 10)
    return stages


def run_cascade(model, index, transcriber, audio: bytes) -> dict:
    stages: dict[str, float] = {}
    with timed(stages, "decode"):
        clip = load_audio(audio)
    with timed(stages, "asr"):
        text = transcriber.transcribe(clip)
    with timed(stages, "text_embed"):
        vector = model.embed_texts([text or " "])[0]
    with timed(stages, "search"):
        index.query(vector, 10)
    return stages


def measure(model: SpeechEmbedding, root: Path, db: Path, args: argparse.Namespace) -> tuple[list[dict], int]:
    """Each system's stage times at each length over an index built in `db`, and the index's size."""
    index = build_index(model, root, db, args.passages)
    transcribers = {"cascade-greedy": Transcriber(beam_size=1), "cascade-beam5": Transcriber(beam_size=5),
                    "cascade-fitted": Transcriber(beam_size=1, fit_window=True)}
    results = []
    for seconds in args.lengths:
        clips = [flac_bytes(c) for c in fixture_clips(root, args.queries, seconds, seconds)]
        runners = {
            "seal": lambda a: run_seal(model, index, a, False),
            "seal-30s-padding": lambda a: run_seal(model, index, a, True),
            **{name: (lambda a, t=t: run_cascade(model, index, t, a)) for name, t in transcribers.items()},
        }
        for system, run in runners.items():
            run(clips[0])  # warm-up
            rows = [run(a) for a in clips]
            stages = {s: {"median_ms": float(np.median([r[s] for r in rows]) * 1000), "p95_ms": float(np.percentile([r[s] for r in rows], 95) * 1000)}
                      for s in rows[0]}
            totals = [sum(r.values()) for r in rows]
            stages["total"] = {"median_ms": float(np.median(totals) * 1000), "p95_ms": float(np.percentile(totals, 95) * 1000)}
            results.append({"seconds": seconds, "system": system, "queries": len(clips), "stages": stages})
            print(f"{seconds:4.0f} s {system:18s} total median {stages['total']['median_ms']:8.1f} ms", flush=True)
    return results, index.count()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="seal-rag bench latency", description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=float, nargs="+", default=[2, 5, 10, 20])
    parser.add_argument("--queries", type=int, default=30)
    parser.add_argument("--out", type=Path, default=Path("benchmarks"))
    parser.add_argument("--passages", type=int, default=None, help="index only the first N SQuAD passages")
    parser.add_argument("--quick", action="store_true", help="3 queries at 2 and 5 s over 200 passages: a smoke run")
    add_data_argument(parser)
    args = parser.parse_args(argv)
    pyplot()  # before hours of work, not after
    root = data_root(args.data)
    if args.quick:
        args.lengths, args.queries, args.passages = [2, 5], 3, 200
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = SpeechEmbedding.from_pretrained()
    # The index is scratch: a temporary folder, removed when the run ends or fails.
    with tempfile.TemporaryDirectory(prefix="seal-latency-") as scratch:
        results, index_passages = measure(model, root, Path(scratch) / "db", args)

    def total(seconds, system):
        return next(r["stages"]["total"]["median_ms"] for r in results if r["seconds"] == seconds and r["system"] == system)

    ratios = {str(s): {c: total(s, c) / total(s, "seal") for c in SYSTEMS[1:]} for s in args.lengths}
    rows = []
    for r in results:
        st = r["stages"]
        cells = [f"{st[k]['median_ms']:.1f} / {st[k]['p95_ms']:.1f}" if k in st else "-" for k in ("decode", "features", "encode", "asr", "text_embed", "search", "total")]
        rows.append([f"{r['seconds']:.0f} s", r["system"], r["queries"], *cells, f"{total(r['seconds'], r['system']) / total(r['seconds'], 'seal'):.2f}x"])
    payload = {"benchmark": "latency", "index_passages": index_passages, **model_fields(model), "quick": args.quick,
               "results": results, "ratio_of_medians_vs_seal": ratios}
    name = "latency" + ("-quick" if args.quick else "")
    write_report(args.out, name, payload,
                 ["query", "system", "n", "decode", "features", "encode", "ASR", "text embed", "search", "total", "vs SEAL"], rows)
    plot(results, args.lengths, args.out / f"{name}.png")


def plot(results: list[dict], lengths: list[float], path: Path) -> None:
    plt = pyplot()

    figure, axis = plt.subplots(figsize=(7, 4))
    for system in SYSTEMS:
        medians = [next(r["stages"]["total"]["median_ms"] for r in results if r["seconds"] == s and r["system"] == system) for s in lengths]
        axis.plot(lengths, medians, marker="o", label=system)
    axis.set_xlabel("query length (s)")
    axis.set_ylabel("median latency, decode to search (ms)")
    axis.set_yscale("log")
    axis.set_title("Query latency on 2 CPU cores, warm models")
    axis.grid(True, alpha=0.3)
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

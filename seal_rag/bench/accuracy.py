"""Accuracy on the held-out sets: text oracle, cascade variants, SEAL speech tower (its vector, and as served), hybrid.

    python -m seal_rag.bench accuracy [--sets squad-holdout ...] [--max-queries 500] [--quick] [--adapt]

Text questions are spoken by the project's TTS with the "bench" voices only, which training
and validation never use (see `seal_rag.voices`). All systems search the same knowledge
base with exact cosine similarity; hybrid fuses SEAL and the beam-5 cascade by reciprocal rank.
"seal (as served)" ranks as `ask` does (`--no-keywords` leaves it out): the query decoded with the
set's knowledge base, then keyword re-ranking of the top hits (`seal_rag.bench.served`).

`--adapt` also scores the speech tower after `seal-rag adapt` to each set's knowledge base, as a
user would run it: adapt reads the passages' text only (spoken by training voices) and never
the questions. That run writes `accuracy-adapt.*`, so the plain run's files stay as they are.
A run adds its sets to the report already in `--out` if that report measured the same weights,
replacing only the sets it measures again; each set records the command and date that made it.
"""

from __future__ import annotations

import argparse
import json
import random
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from ..adapt import adapt
from ..audio import load_audio
from ..cascade import Transcriber
from ..config import ADAPT_MAX_SENTENCES, ADAPT_TAKES
from ..embedding import SpeechEmbedding
from ..fusion import fused_scores
from ..kb_decoding import DecodingSettings
from ..keyword_rerank import KeywordReranker
from ..progress import map_with_progress
from ..tts import synthesize
from ..voices import bench_voices
from .data import add_data_argument, data_root
from .heldout import ALL_SETS, SPEECH_SETS, load_set, set_folder
from .metrics import gold_ranks, summarise
from .report import command_line, model_fields, pyplot, write_report
from .served import SERVED, served_scores

CASCADES = {  # name -> Transcriber settings
    "cascade-greedy": dict(beam_size=1),
    "cascade-beam5": dict(beam_size=5),
    "cascade-fitted": dict(beam_size=1, fit_window=True),
}


def spoken_queries(dataset, seed: int) -> tuple[list[np.ndarray], list[str]]:
    """Audio for each query: the recording, or TTS with a bench voice chosen per query."""
    if dataset.name in SPEECH_SETS:
        return [load_audio(q.audio) for q in dataset.queries], ["human recordings"]
    rng = random.Random(seed)
    voices = bench_voices()
    used = set()

    def speak(query):
        voice = rng.choice(voices)
        used.add(voice.label)
        return synthesize(query.text, voice, rng)

    return map_with_progress(f"{dataset.name}: speaking", speak, dataset.queries), sorted(used)


@torch.no_grad()
def head_outputs(model, states: list[torch.Tensor]) -> tuple[np.ndarray, list[np.ndarray] | None]:
    """Each clip's vector and recognizer logits (None without a phonetic half) from its frozen-encoder
    states, one clip at a time as `ask` embeds it.

    Adapted models share the frozen encoder, so the states are computed once per clip and each
    head reads them.
    """
    outputs = [model.heads([s]) for s in states]
    logits = None if model.phonetic is None else [x[0] for _, x in outputs]
    return np.concatenate([vectors for vectors, _ in outputs]), logits


def halves(model, queries: dict[str, np.ndarray], passages: np.ndarray) -> dict[str, np.ndarray]:
    """Scores by one half of the vectors alone: each system by the semantic half (for a cascade,
    the usual two-stage pipeline: ASR, then MiniLM) and the speech tower by the phonetic half."""
    out, (semantic, phonetic) = {}, model.split(passages)
    for system, vectors in queries.items():
        query_semantic, query_phonetic = model.split(vectors)
        out[f"{system}/semantic"] = query_semantic @ semantic.T
        if system.startswith("seal"):
            out[f"{system}/phonetic"] = query_phonetic @ phonetic.T
    return out


def shrink_knowledge_base(dataset, max_passages: int, seed: int) -> None:
    """Keep every gold passage of the queries, and random others up to `max_passages` in all.

    For smoke runs only: figures against part of a knowledge base are easier than the real ones.
    """
    gold = {g for q in dataset.queries for g in q.gold}
    others = [i for i, pid in enumerate(dataset.passage_ids) if pid not in gold]
    keep = {i for i, pid in enumerate(dataset.passage_ids) if pid in gold}
    keep |= set(random.Random(seed).sample(others, max(0, min(len(others), max_passages - len(keep)))))
    dataset.passage_ids = [dataset.passage_ids[i] for i in sorted(keep)]
    dataset.passages = [dataset.passages[i] for i in sorted(keep)]


def evaluate_set(name: str, root: Path, model, transcribers: dict, max_queries: int, seed: int, adapt_options: dict | None = None,
                 max_passages: int | None = None, as_served: bool = True) -> dict:
    dataset = load_set(name, root)
    if len(dataset.queries) > max_queries:
        dataset.queries = random.Random(seed).sample(dataset.queries, max_queries)
    if max_passages is not None:
        shrink_knowledge_base(dataset, max_passages, seed)
    golds = [q.gold for q in dataset.queries]
    passages = model.embed_texts(dataset.passages, show_progress=True)
    clips, voices = spoken_queries(dataset, seed)
    queries = {"text-oracle": model.embed_texts([q.text for q in dataset.queries])}
    start = time.perf_counter()
    states = map_with_progress(f"{name}: seal", lambda c: model.encode_queries([c])[0], clips)
    queries["seal"], logits = head_outputs(model, states)
    seconds = {"seal": (time.perf_counter() - start) / len(clips)}
    adaptation = None
    if adapt_options is not None:
        # Only the knowledge base's text goes in, as `seal-rag adapt` gives it; the questions stay unseen.
        result = adapt(model, dataset.passages, seed=seed, **adapt_options)
        assert result.model.space_fingerprint == model.space_fingerprint  # so the passage vectors above still serve
        queries["seal-adapted"], _ = head_outputs(result.model, states)  # adapt changes the head only
        adaptation = {"sentences": result.sentences, "speak_seconds": round(result.speak_seconds, 1),
                      "train_seconds": round(result.train_seconds, 1), **adapt_options, "steps": result.steps}
    for system, transcriber in transcribers.items():
        start = time.perf_counter()
        transcripts = map_with_progress(f"{name}: {system}", transcriber.transcribe, clips)
        seconds[system] = (time.perf_counter() - start) / len(clips)
        queries[system] = model.embed_texts([t or " " for t in transcripts])
    scores = {system: vectors @ passages.T for system, vectors in queries.items()}
    if logits is not None and as_served:  # the set's passages are its knowledge base, as an index's chunks are
        reranker = KeywordReranker.from_texts(dataset.passages, decoding=DecodingSettings())
        scores[SERVED] = served_scores(model, reranker, queries["seal"], logits, passages, dataset.passages)
    if model.phonetic is not None:
        scores |= halves(model, queries, passages)
    if "cascade-beam5" in scores:
        scores["hybrid"] = fused_scores(scores["seal"], scores["cascade-beam5"])
        if "seal-adapted" in scores:
            scores["hybrid-adapted"] = fused_scores(scores["seal-adapted"], scores["cascade-beam5"])
    systems = {s: summarise(gold_ranks(m, dataset.passage_ids, golds)) for s, m in scores.items()}
    return {"set": name, "queries": len(dataset.queries), "passages": len(dataset.passages),
            "voices": voices, "systems": systems, "seconds_per_query": seconds,
            **({"adaptation": adaptation} if adaptation else {})}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="seal-rag bench accuracy", description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="+", choices=ALL_SETS, help="default: all; with --quick, squad-holdout and commonvoice-100")
    parser.add_argument("--max-queries", type=int, default=500)
    parser.add_argument("--cascades", nargs="+", default=list(CASCADES), choices=list(CASCADES))
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=Path("benchmarks"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-passages", type=int, default=None,
                        help="search only the queries' gold passages and others up to N [default: the whole knowledge base]")
    parser.add_argument("--quick", action="store_true", help="20 queries of two sets against 300 passages, greedy cascade: a smoke run")
    parser.add_argument("--no-keywords", action="store_true", help="leave out the as-served system (KB decoding and keyword re-ranking)")
    parser.add_argument("--adapt", action="store_true", help="also score the tower adapted to each set's knowledge base")
    parser.add_argument("--adapt-steps", type=int, default=None, help="as `seal-rag adapt --steps` [default: 5 passes over the clips]")
    parser.add_argument("--adapt-max-sentences", type=int, default=ADAPT_MAX_SENTENCES, help="as `seal-rag adapt --max-sentences`")
    parser.add_argument("--adapt-takes", type=int, default=ADAPT_TAKES, help="as `seal-rag adapt --takes`")
    add_data_argument(parser)
    args = parser.parse_args(argv)
    pyplot()  # before hours of work, not after
    if (args.adapt_steps is not None and args.adapt_steps < 1) or args.adapt_max_sentences < 2 or args.adapt_takes < 1:
        parser.error("--adapt-steps and --adapt-takes must be at least 1 and --adapt-max-sentences at least 2")  # `seal-rag adapt`'s bounds
    if args.quick:
        args.sets, args.max_queries, args.cascades = args.sets or ["squad-holdout", "commonvoice-100"], 20, ["cascade-greedy"]
        args.max_passages = min(args.max_passages or 300, 300)
        args.adapt_steps, args.adapt_max_sentences, args.adapt_takes = min(args.adapt_steps or 8, 8), min(args.adapt_max_sentences, 64), 1
    args.sets = args.sets or list(ALL_SETS)
    root = data_root(args.data)  # before any model loads: a missing folder is a one-line error
    for name in args.sets:
        set_folder(name, root)
    adapt_options = ({"steps": args.adapt_steps, "max_sentences": args.adapt_max_sentences, "takes": args.adapt_takes}
                     if args.adapt else None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = SpeechEmbedding.from_pretrained(args.model)
    transcribers = {name: Transcriber(**CASCADES[name]) for name in args.cascades}
    report = "accuracy" + ("-adapt" if args.adapt else "") + ("-quick" if args.quick else "")
    # A set takes up to 85 min (with --adapt), so sets are often run one at a time into one report.
    results = kept_from_earlier_run(args.out / f"{report}.json", model.fingerprint, args.quick, args.sets)
    for name in args.sets:  # the report is rewritten after each set, so a long run keeps what it finished
        entry = evaluate_set(name, root, model, transcribers, args.max_queries, args.seed, adapt_options, args.max_passages,
                             not args.no_keywords)
        results.append({**entry, "command": command_line(), "date": time.strftime("%Y-%m-%d %H:%M:%S")})
        payload = {"benchmark": "accuracy", **model_fields(model), "quick": args.quick, "results": results,
                   "command": "; ".join(dict.fromkeys(r["command"] for r in results)),
                   "date": "; ".join(dict.fromkeys(r["date"] for r in results))}
        rows = [
            [r["set"], r["queries"], system, *(f"{m[k]['mean']:.3f} [{m[k]['low']:.3f}, {m[k]['high']:.3f}]"
                                                for k in ("top1", "top3", "top10", "mrr@10"))]
            for r in results for system, m in r["systems"].items()
        ]
        write_report(args.out, report, payload, ["set", "queries", "system", "Top-1", "Top-3", "Top-10", "MRR@10"], rows)
        plot(results, args.out / f"{report}.png")


def kept_from_earlier_run(path: Path, fingerprint: str, quick: bool, sets: list[str]) -> list[dict]:
    """The entries of the report already at `path` that a run of `sets` keeps: the sets it does
    not measure again, if they were measured with the same weights. Each keeps the command and
    date that made it (an entry written before entries carried them takes its report's)."""
    try:
        earlier = json.loads(path.read_text())
    except (OSError, ValueError):
        return []  # no report, or not one this benchmark wrote: this run starts a new one
    if earlier.get("model_fingerprint") != fingerprint or earlier.get("quick") != quick:
        return []  # other weights: their figures must not pass for this model's
    return [{"command": earlier["command"], "date": earlier["date"], **entry}
            for entry in earlier["results"] if entry["set"] not in sets]


def plot(results: list[dict], path: Path) -> None:
    """Top-1 of every system on every set, with its 95% bootstrap interval."""
    plt = pyplot()

    systems = list(dict.fromkeys(s for r in results for s in r["systems"]))
    width = 0.8 / len(systems)
    figure, axis = plt.subplots(figsize=(max(6, 1.6 * len(results) + 2), 4))
    for i, system in enumerate(systems):
        xs = [k + (i - (len(systems) - 1) / 2) * width for k, r in enumerate(results) if system in r["systems"]]
        top1 = [r["systems"][system]["top1"] for r in results if system in r["systems"]]
        errors = [[t["mean"] - t["low"] for t in top1], [t["high"] - t["mean"] for t in top1]]
        axis.bar(xs, [t["mean"] for t in top1], width, yerr=errors, capsize=2, label=system)
    axis.set_xticks(range(len(results)), [r["set"] for r in results])
    axis.set_ylabel("Top-1")
    axis.set_ylim(0, 1)
    axis.set_title("Top-1 on held-out sets (bars: 95% bootstrap interval)")
    axis.grid(True, axis="y", alpha=0.3)
    axis.legend(fontsize=7, ncol=2)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

"""Top-1 of SEAL and the cascade when the spoken question is noisy, fast, slow, phoned in or echoing.

    seal-rag bench robustness [--max-queries 200] [--conditions clean white-10dB ...] [--resume] [--quick]

The SQuAD holdout questions are spoken with the bench voices, exactly as `accuracy` speaks
them, and searched against all 2,067 SQuAD dev passages. Every condition corrupts the same
clean clips with a fixed seed:

- white noise and babble at 20, 10, 5 and 0 dB SNR; babble is four *other* questions of the
  same set talking at once, so it needs no external data;
- speed 0.8x and 1.25x by resampling (pitch moves with it, as on tape);
- a telephone channel (300-3400 Hz band, through 8 kHz and back to 16 kHz);
- a room: a synthetic exponentially decaying impulse response with RT60 0.5 s.

The corruptions are `seal_rag.augment`'s, the ones training draws from at random.

200 queries by default (of 2,434): the 95% interval on a Top-1 near the cascade's 35% is then
about +-6.5 points, narrow enough to see a 10-point drop, while the 13 conditions already cost
2,600 transcriptions. Greedy ASR takes 1.7 s of CPU on a clean clip but 3-6 s on a noisy one,
where faster-whisper's temperature fallback decodes again, so a full run takes about 2 hours
on 2 idle cores (3-4 beside other jobs); the whole set would take a day. `--quick` (10
queries and 200 passages; clean, white and babble at 20 dB) is a smoke run. Each condition
draws its noise from its own seed, so `--resume` can finish a stopped run: it keeps the
conditions already in the report and measures only the others, with the same figures a
single run would give.
"""

from __future__ import annotations

import argparse
import json
import random
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..augment import add_noise, change_speed, coloured_noise, reverberate, synthetic_rir, telephone
from ..cascade import CascadeEmbedding, Transcriber
from ..embedding import SpeechEmbedding
from ..kb_decoding import DecodingSettings
from ..keyword_rerank import KeywordReranker
from ..progress import map_with_progress
from .accuracy import CASCADES, spoken_queries
from .data import add_data_argument, data_root
from .heldout import load_set
from .metrics import gold_ranks, summarise
from .served import SERVED, served_scores
from .report import model_fields, pyplot, write_report

SET = "squad-holdout"
SNRS_DB = (20, 10, 5, 0)
SPEEDS = (0.8, 1.25)
RT60_SECONDS = 0.5  # a furnished office or living room
BABBLE_TALKERS = 4  # enough voices that no single word stands out, as in a cafe


@dataclass(frozen=True)
class Condition:
    name: str
    kind: str  # clean, white, babble, speed, telephone or reverb
    value: float | None = None  # SNR in dB for noise, factor for speed, RT60 in seconds for reverb


CONDITIONS = (
    [Condition("clean", "clean")]
    + [Condition(f"{kind}-{snr}dB", kind, snr) for kind in ("white", "babble") for snr in SNRS_DB]
    + [Condition(f"speed-{factor}x", "speed", factor) for factor in SPEEDS]
    + [Condition("telephone", "telephone"), Condition("reverb", "reverb", RT60_SECONDS)]
)
BY_NAME = {c.name: c for c in CONDITIONS}
QUICK_CONDITIONS = ["clean", "white-20dB", "babble-20dB"]


def babble(clips: list[np.ndarray], index: int, rng: random.Random) -> np.ndarray:
    """Other clips of the set, each from a random point, looped to this clip's length and summed."""
    size = clips[index].size
    crowd = np.zeros(size, np.float32)
    for other in rng.sample([j for j in range(len(clips)) if j != index], BABBLE_TALKERS):
        talker = np.resize(np.roll(clips[other], -rng.randrange(clips[other].size)), size)
        crowd += talker / (np.sqrt(np.mean(talker**2)) + 1e-9)  # equal loudness per talker
    return crowd


def corrupt(condition: Condition, clips: list[np.ndarray], seed: int) -> list[np.ndarray]:
    """Each clip under `condition`, deterministically for a given seed."""
    # Seeded by kind, not by level: every SNR of one kind hears the very same noise, so
    # the points of a curve differ by level alone.
    rng = random.Random(f"{seed}:{condition.kind}")
    corrupted = []
    for index, clip in enumerate(clips):
        if condition.kind == "white":
            clip = add_noise(clip, coloured_noise(rng, clip.size, beta=0.0), condition.value)
        elif condition.kind == "babble":
            clip = add_noise(clip, babble(clips, index, rng), condition.value)
        elif condition.kind == "speed":
            clip = change_speed(clip, condition.value)
        elif condition.kind == "telephone":
            clip = telephone(clip)
        elif condition.kind == "reverb":
            clip = reverberate(clip, synthetic_rir(rng, condition.value))
        # Noise at 0 dB can push peaks past full scale: scale down rather than clip.
        corrupted.append((clip / max(1.0, float(np.abs(clip).max()))).astype(np.float32))
    return corrupted


def keep_passages(dataset, limit: int, seed: int) -> None:
    """Cut the knowledge base to `limit` passages: every gold of the sampled queries, then random others."""
    golds = set().union(*(q.gold for q in dataset.queries))
    others = [i for i, pid in enumerate(dataset.passage_ids) if pid not in golds]
    kept = [i for i, pid in enumerate(dataset.passage_ids) if pid in golds]
    kept = sorted(kept + random.Random(seed).sample(others, max(0, min(len(others), limit - len(kept)))))
    dataset.passage_ids = [dataset.passage_ids[i] for i in kept]
    dataset.passages = [dataset.passages[i] for i in kept]


def evaluate(condition: Condition, clips, model, cascade: tuple[str, CascadeEmbedding], passages: np.ndarray, dataset,
             seed: int, reranker: KeywordReranker | None = None) -> dict:
    """Top-k of the systems on the clips under one condition; each clip is heard and transcribed once.

    Args:
        cascade: The cascade's system name and the cascade itself.
        passages: `(passages, dim)` text-tower vectors of the whole set.
        reranker: The set's keyword re-ranker with its KB decoder: adds "seal (as served)", ranked as `ask` ranks.
    """
    cascade_name, cascade = cascade
    noisy = corrupt(condition, clips, seed)
    golds = [q.gold for q in dataset.queries]
    start = time.perf_counter()
    encoded = map_with_progress(f"{condition.name}: seal", lambda c: model.encode_clips([c]), noisy)
    seal_seconds = time.perf_counter() - start
    seal = np.concatenate([vectors for vectors, _ in encoded])
    start = time.perf_counter()
    transcripts = map_with_progress(f"{condition.name}: {cascade_name}", cascade.transcriber.transcribe, noisy)
    cascade_seconds = time.perf_counter() - start
    scores = {"seal": seal @ passages.T, cascade_name: cascade.embed_transcripts(transcripts) @ passages.T}
    if reranker is not None:
        logits = [x[0] for _, x in encoded]
        scores[SERVED] = served_scores(model, reranker, seal, logits, passages, dataset.passages)
    return {
        **asdict(condition),
        "systems": {s: summarise(gold_ranks(m, dataset.passage_ids, golds), seed) for s, m in scores.items()},
        "seconds_per_query": {"seal": seal_seconds / len(noisy), cascade_name: cascade_seconds / len(noisy)},
        # A few transcripts show what the noise did to the words.
        "examples": [{"question": q.text, "transcript": t} for q, t in zip(dataset.queries[:3], transcripts)],
    }


def interval(stat: dict) -> str:
    return f"{stat['mean']:.3f} [{stat['low']:.3f}, {stat['high']:.3f}]"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="seal-rag bench robustness", description=__doc__.splitlines()[0])
    # What is measured: these four set the run's size, and --quick overrides them.
    parser.add_argument("--max-queries", type=int, default=200, help="questions sampled from the set (see the docstring)")
    parser.add_argument("--passages", type=int, default=None, help="search N passages (the golds and random others), not all")
    parser.add_argument("--conditions", nargs="+", default=list(BY_NAME), choices=list(BY_NAME))
    parser.add_argument("--quick", action="store_true", help="10 queries, 200 passages; clean, white and babble at 20 dB: a smoke run")
    # Who is measured, and where the results go.
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--cascade", default="cascade-greedy", choices=list(CASCADES))
    parser.add_argument("--no-keywords", action="store_true", help="leave out the as-served system (KB decoding and keyword re-ranking)")
    parser.add_argument("--seed", type=int, default=0, help="fixes the questions, voices and noise")
    parser.add_argument("--out", type=Path, default=Path("benchmarks"))
    parser.add_argument("--resume", action="store_true", help="keep the conditions an identical earlier run measured; run the rest")
    add_data_argument(parser)
    args = parser.parse_args(argv)
    pyplot()  # before hours of work, not after
    if args.quick:
        args.max_queries, args.passages, args.conditions = 10, 200, QUICK_CONDITIONS
    if args.max_queries <= BABBLE_TALKERS:
        raise SystemExit(f"--max-queries must be over {BABBLE_TALKERS}: babble mixes {BABBLE_TALKERS} other questions")

    dataset = load_set(SET, data_root(args.data))
    if len(dataset.queries) > args.max_queries:
        dataset.queries = random.Random(args.seed).sample(dataset.queries, args.max_queries)
    if args.passages:
        keep_passages(dataset, args.passages, args.seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = SpeechEmbedding.from_pretrained(args.model)
    cascade = (args.cascade, CascadeEmbedding(model, Transcriber(**CASCADES[args.cascade])))
    passages = model.embed_texts(dataset.passages, show_progress=True)
    reranker = (KeywordReranker.from_texts(dataset.passages, decoding=DecodingSettings())
                if model.phonetic is not None and not args.no_keywords else None)
    clips, voices = spoken_queries(dataset, args.seed)
    oracle = summarise(gold_ranks(model.embed_texts([q.text for q in dataset.queries]) @ passages.T,
                                  dataset.passage_ids, [q.gold for q in dataset.queries]), args.seed)
    earlier = {r["name"]: r for r in measured_before(args, dataset, voices, model)} if args.resume else {}
    results = []
    for name in args.conditions:
        if name in earlier:
            results.append(earlier[name])
            continue
        results.append(evaluate(BY_NAME[name], clips, model, cascade, passages, dataset, args.seed, reranker))
        print(f"{name:12s} " + "  ".join(f"{s} Top-1 {m['top1']['mean']:.3f}" for s, m in results[-1]["systems"].items()), flush=True)
        # Written after every condition, so a run stopped after hours keeps what it measured.
        report(args, dataset, voices, model, oracle, results)


def report_path(args) -> Path:
    return args.out / ("robustness" + ("-quick" if args.quick else "") + ".json")


def measured_before(args, dataset, voices: list[str], model) -> list[dict]:
    """The earlier report's results for the planned conditions, if it measured exactly this run."""
    path = report_path(args)
    if not path.exists():
        return []
    try:
        earlier = json.loads(path.read_text())
    except json.JSONDecodeError:
        raise SystemExit(f"--resume: {path} is not a robustness report (bad JSON); drop --resume or pass another --out") from None
    same_run = {"queries": len(dataset.queries), "passages": len(dataset.passages), "voices": voices,
                "seed": args.seed, "as_served": not args.no_keywords, **model_fields(model)}
    changed = [key for key, value in same_run.items() if earlier.get(key) != value]
    if changed or earlier.get("set") != SET:
        raise SystemExit(f"--resume: {path} measured a different run ({', '.join(changed) or 'set'} differ); "
                         "drop --resume or pass another --out")
    by_name = {r["name"]: r for r in earlier["results"]}
    kept = [by_name[name] for name in args.conditions if name in by_name]
    print(f"resuming: {len(kept)} condition(s) already measured in {path}", flush=True)
    return kept


def report(args, dataset, voices: list[str], model, oracle: dict, results: list[dict]) -> None:
    """The JSON, the Markdown table and the SNR plot for the conditions measured so far."""
    payload = {"benchmark": "robustness", "set": SET, "queries": len(dataset.queries), "passages": len(dataset.passages),
               "voices": voices, "seed": args.seed, "as_served": not args.no_keywords, **model_fields(model), "quick": args.quick,
               "conditions_planned": args.conditions,
               "text_oracle": oracle, "results": results}
    rows = [["text (no audio)", "text-oracle", len(dataset.queries), interval(oracle["top1"]), interval(oracle["top10"])]]
    rows += [[r["name"], system, len(dataset.queries), interval(m["top1"]), interval(m["top10"])]
             for r in results for system, m in r["systems"].items()]
    name = report_path(args).stem
    write_report(args.out, name, payload, ["condition", "system", "queries", "Top-1", "Top-10"], rows)
    plot(results, ["seal", SERVED, args.cascade], len(dataset.queries), args.out / f"{name}.png")


def plot(results: list[dict], systems: list[str], queries: int, path: Path) -> None:
    """Top-1 against SNR, a line per system and noise; clean Top-1 as a dotted level."""
    plt = pyplot()

    figure, axis = plt.subplots(figsize=(7, 4))
    shown = [s for s in systems if any(s in r["systems"] for r in results)]
    for colour, system in zip(("tab:blue", "tab:green", "tab:orange"), shown):
        for kind, style, marker in (("white", "-", "o"), ("babble", "--", "s")):
            points = sorted((r["value"], r["systems"][system]["top1"]["mean"]) for r in results
                            if r["kind"] == kind and system in r["systems"])
            if points:
                axis.plot(*zip(*points), style, marker=marker, color=colour, label=f"{system}, {kind} noise")
        for r in results:
            if r["kind"] == "clean" and system in r["systems"]:
                axis.axhline(r["systems"][system]["top1"]["mean"], color=colour, linestyle=":", label=f"{system}, clean")
    axis.set(xlabel="SNR (dB)", ylabel="Top-1", ylim=(0, 1), title=f"Top-1 under noise: {queries} {SET} questions, bench voices")
    axis.grid(True, alpha=0.3)
    axis.legend(fontsize="small")
    figure.savefig(path, dpi=120, bbox_inches="tight")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

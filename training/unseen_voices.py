"""A synthesizer family the shipped model never heard (piper), against the cascade, clean and noisy.

    # choices (validation: VAL_ARTICLES questions, the whole validation knowledge base, as training/evaluate.py)
    python -m training.unseen_voices --split val --families piper          # with the cascade (the slow part)
    python -m training.unseen_voices --split val --families piper espeak-flite --grid --no-cascade --out benchmarks/unseen-voices
    # reporting only (held-out questions spoken by piper, the validation family; human sets as recorded)
    python -m training.unseen_voices --sets squad-holdout pubmedqa covidqa ljspeech-385 commonvoice-100 --out benchmarks/unseen-voices
    # a 5 s question's latency: soft and greedy decoding, keyword re-ranking and the beam-5 cascade, interleaved in one run
    python -m training.unseen_voices --latency 20 --threads 2 --out benchmarks/unseen-voices

Roles (`seal_rag.voices`): piper is the *validation* family. Figures on held-out sets spoken by
piper are held-out questions in a validation family's voice, not a test on an unseen family.
A model trained with flite held out (`[data] families`, its `voices.json`) can be benchmarked on
flite, a family neither training nor validation used (every flite speaker, one per question):

    python -m training.unseen_voices --sets squad-holdout pubmedqa covidqa --families flite --model DIR
"espeak-flite" is the project's own validation voices (`training.cache`'s validation plan), to
check that a choice made on piper does not lose on the training families.

Each question is spoken once (0.1 s of silence each side, as `training.cache` makes validation
clips). "noisy" adds coloured noise at 10-25 dB SNR to the same clip (`seal_rag.augment`). Every
clip goes through Whisper's encoder once: the tower's semantic vector and the phoneme recognizer's
logits are kept, so greedy and soft decodings score the same states. "seal + keywords" is the soft
ranking's top passages re-ranked by keyword spotting (`seal_rag.keyword_rerank`, its shipped
`KeywordSettings` unless --keywords; the word table and IDF of the set's whole knowledge base), as
`Retriever(..., keywords=...)` does. The cascade is faster-whisper base int8, beam 5, then the SAME
text tower (both halves), and also then MiniLM alone.
Everything is cached in chunks under `--cache` (default /tmp/unseen): a killed run resumes, and
`--prepare` fills the cache without scoring (so held-out figures need not be seen while choosing).
"--no-cascade" transcribes nothing new but still scores cascade transcripts already cached. Piper
draws its noise inside onnxruntime, so its clips are only repeatable through that cache.
Prints one table per set and writes `<out>/unseen_voices.json` (piper), `-flite.json`, `-val.json`, or
`-human.json` (human speech sets alone, which any model may take).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from seal_rag.atomic_file import atomic_path
from seal_rag.audio import SAMPLE_RATE, load_audio
from seal_rag.augment import add_noise, coloured_noise
from seal_rag.bench.data import add_data_argument, data_root
from seal_rag.bench.heldout import SPEECH_SETS, TEXT_SETS, load_set
from seal_rag.bench.metrics import gold_ranks, summarise
from seal_rag.errors import DataNotFoundError
from seal_rag.kb_decoding import DecodingSettings
from seal_rag.bench.served import keyword_scores
from seal_rag.config import DEFAULT_MODEL, MODELS_DIR
from seal_rag.keyword_rerank import KeywordReranker, KeywordSettings
from seal_rag.phonetic import SoftDecoding
from seal_rag.retrieve import served_vector
from seal_rag.safe_text import for_terminal
from seal_rag.store import Hit
from seal_rag.tts import synthesize
from seal_rag.voices import FAMILY_ROLES, Voice, family_voices

from . import text_sources as ts
from .config import positive_int, run_command

CHUNK = 25
SNR_DB = (10.0, 25.0)
PAD_SECONDS = 0.1
VAL_CONFIG = "training/configs/base.toml"  # its [data] plans the 400 validation questions and their voices


@dataclass
class Query:
    qid: str
    text: str
    gold: frozenset
    voice: Voice | None = None  # None: a human recording at `audio`
    seed: int | str = 0
    audio: Path | None = None


@dataclass
class EvalSet:
    name: str
    family: str  # "piper", "espeak-flite" or "human"
    passage_ids: list[str]
    passages: list[str]
    queries: list[Query] = field(default_factory=list)


def val_sets(root: Path, families: list[str], max_queries: int) -> list[EvalSet]:
    """The validation questions and knowledge base of `training/evaluate.py`, spoken by each family."""
    from .cache import build_plan
    from .config import load_config

    ts.use_data(root)
    plan = build_plan(load_config(VAL_CONFIG)["data"], "val")[:max_queries]
    passages = ts.squad_passages(ts.squad_articles("train") + ts.squad_articles("val"))
    out = []
    for family in families:
        chosen = EvalSet("val", family, [p.passage_id for p in passages], [p.text for p in passages])
        for item in plan:
            voice = Voice(**item["voice"]) if family == "espeak-flite" else family_voices(family)[0]
            chosen.queries.append(Query(str(item["index"]), item["text"], frozenset([item["passage_id"]]), voice, item["seed"]))
        out.append(chosen)
    return out


def heldout_set(name: str, root: Path, max_queries: int, seed: int, family: str, speakers: list[Voice]) -> EvalSet:
    """A held-out set's questions; a text set's spoken by `family`, one of its `speakers` a question."""
    dataset = load_set(name, root)
    queries = dataset.queries
    if len(queries) > max_queries:
        queries = random.Random(seed).sample(queries, max_queries)
    spoken = name not in SPEECH_SETS
    out = EvalSet(name, family if spoken else "human", dataset.passage_ids, dataset.passages)
    for q in queries:
        voice = random.Random(f"{seed}:{q.qid}:speaker").choice(speakers) if spoken else None
        out.queries.append(Query(q.qid, q.text, q.gold, voice, f"{seed}:{q.qid}", q.audio))
    return out


def held_out_speakers(sets: list[str], families: list[str], roles: dict[str, str], prepare: bool = False) -> list[Voice]:
    """The voices that speak the text sets' questions: every speaker of the one family in `families`,
    which the model (`roles`, `benchmark_roles`) must have held out of training; none when `sets` are
    human speech alone, which any model may take. Raises ValueError otherwise.

    `prepare` (speaking and transcribing, no scoring) may fill the cache for flite before the model
    that held it out exists."""
    if all(name in SPEECH_SETS for name in sets):
        return []
    if len(families) != 1:
        raise ValueError(f"held-out questions are spoken by one family this model held out of training, not {families}")
    family = families[0]
    return family_voices(family, roles | ({family: "bench"} if prepare and family == "flite" else {}))


def model_roles(model_dir: Path) -> dict:
    """Which synthesizer families each half of a model heard (`voices.json`, written by
    `training.release` and `training.phonetic --release` for a run that held a family out; else the shipped roles)."""
    path = model_dir / "voices.json"
    if path.is_file():
        return json.loads(path.read_text())
    return {"phonetic": dict(FAMILY_ROLES), "semantic": dict(FAMILY_ROLES)}


def benchmark_roles(roles: dict, phonetic_weight: float, spelled_weight: float = 0.0) -> dict[str, str]:
    """The family roles of the model as served: a family either half heard counts as heard, except
    the semantic half's when it carries no weight or when queries spell their semantic half from
    the knowledge base's words (`spelled_weight`: the speech tower's half is then not served; on
    a family only it heard, `score_systems` scores nothing that reads it)."""
    halves = [roles["phonetic"]] + ([roles["semantic"]] if phonetic_weight < 1 and not spelled_weight else [])
    families = set().union(*halves)
    heard = {f for half in halves for f, role in half.items() if role == "train"}
    chose = {f for half in halves for f, role in half.items() if role == "val"}
    return {f: "train" if f in heard else "val" if f in chose else "bench" for f in families}


def make_clip(query: Query) -> np.ndarray:
    if query.voice is None:
        return load_audio(query.audio)
    clip = synthesize(query.text, query.voice, random.Random(query.seed))
    pad = np.zeros(int(PAD_SECONDS * SAMPLE_RATE), np.float32)
    return np.concatenate([pad, clip, pad])


def noisy(clip: np.ndarray, query: Query) -> np.ndarray:
    rng = random.Random(f"{query.seed}:{query.qid}:noise")
    x = add_noise(clip, coloured_noise(rng, clip.size), rng.uniform(*SNR_DB))
    return (x / (np.abs(x).max() + 1e-9) * 0.9).astype(np.float32)


def _save(path: Path, **arrays) -> None:
    with atomic_path(path) as partial:
        np.savez(partial, **arrays)


class Runner:
    """Clips, encodings and cascade transcripts of one set and family, chunk by chunk, on disk."""

    def __init__(self, model, cache: Path, chosen: EvalSet, conditions: list[str]):
        self.model, self.set = model, chosen
        self.dir = cache / chosen.name / chosen.family
        self.dir.mkdir(parents=True, exist_ok=True)
        self.conditions = conditions if chosen.family != "human" else ["clean"]
        self.chunks = [chosen.queries[i : i + CHUNK] for i in range(0, len(chosen.queries), CHUNK)]
        self._transcriber = None

    def audio(self, k: int) -> list[np.ndarray]:
        path = self.dir / f"audio_{k:03d}.npz"
        qids = [q.qid for q in self.chunks[k]]
        if self._stale(path, qids):
            clips = [make_clip(q) for q in self.chunks[k]]
            _save(path, audio=np.concatenate([(c * 32767).astype(np.int16) for c in clips]), lengths=[c.size for c in clips],
                  qids=qids)
        with np.load(path) as f:
            return [a.astype(np.float32) / 32767 for a in np.split(f["audio"], np.cumsum(f["lengths"])[:-1])]

    def _stale(self, path: Path, qids: list[str]) -> bool:
        """Whether the chunk file at `path` is missing or holds other questions (a run with another --max-queries)."""
        if not path.is_file():
            return True
        with np.load(path) as f:
            if list(f["qids"]) == qids:
                return False
        for other in self.dir.glob(f"*_{path.stem.rsplit('_', 1)[1]}.*"):  # this chunk's later stages are stale too
            other.unlink()
        return True

    def clips(self, k: int, condition: str) -> list[np.ndarray]:
        clips = self.audio(k)
        return clips if condition == "clean" else [noisy(c, q) for c, q in zip(clips, self.chunks[k])]

    @torch.no_grad()
    def encode(self, k: int, condition: str) -> None:
        path = self.dir / self.encoded_name(condition, k)
        if path.is_file():
            return
        semantic, logits = [], []
        for clip in self.clips(k, condition):  # one clip at a time, as a query is embedded
            states = self.model.encode_queries([clip])  # the encoder `ask` hears queries with
            semantic.append(self.model.speech.embed_states(states).numpy()[0])
            logits.append(self.model.phonetic.logits(states)[0])
        _save(path, semantic=np.stack(semantic), logits=np.concatenate(logits), steps=[len(x) for x in logits])

    def encoded_name(self, condition: str, k: int) -> str:
        """The cache file of one chunk's encodings, by the model and the encoder that made them (int8 and fp32 states differ)."""
        return f"enc_{self.model.query_encoder}_{self.model.fingerprint}_{condition}_{k:03d}.npz"

    def transcribe(self, k: int, condition: str) -> None:
        path = self.dir / f"asr_{condition}_{k:03d}.json"
        if path.is_file():
            return
        if self._transcriber is None:
            from seal_rag.cascade import Transcriber

            self._transcriber = Transcriber(beam_size=5)
        transcripts = [self._transcriber.transcribe(c) for c in self.clips(k, condition)]
        with atomic_path(path) as partial:
            partial.write_text(json.dumps(transcripts))

    def run(self, cascade: bool) -> None:
        for stage in ([self.encode, self.transcribe] if cascade else [self.encode]):
            for condition in self.conditions:
                for k in range(len(self.chunks)):
                    start = time.time()
                    stage(k, condition)
                    if time.time() - start > 1:
                        print(f"  {self.set.name}/{self.set.family} {stage.__name__} {condition} chunk {k + 1}/{len(self.chunks)}"
                              f" [{time.time() - start:.0f} s]", flush=True)

    def loaded(self, condition: str) -> tuple[np.ndarray, list[np.ndarray], list[str] | None]:
        """Semantic vectors, recognizer logits, and transcripts (None until every chunk has them)."""
        semantic, logits, transcripts = [], [], []
        for k in range(len(self.chunks)):
            with np.load(self.dir / self.encoded_name(condition, k)) as f:
                semantic.append(f["semantic"])
                logits += np.split(f["logits"], np.cumsum(f["steps"])[:-1])
            path = self.dir / f"asr_{condition}_{k:03d}.json"
            transcripts = transcripts + json.loads(path.read_text()) if transcripts is not None and path.is_file() else None
        return np.concatenate(semantic), logits, transcripts


@torch.no_grad()
def passage_halves(model, cache: Path, chosen: EvalSet) -> dict[str, np.ndarray]:
    """The knowledge base as the text tower stores it (semantic, phonetic) and as MiniLM alone sees it."""
    path = cache / chosen.name / f"passages_{model.space_fingerprint}.npz"
    if not path.is_file():
        base = model.text.encode_base(chosen.passages, 32, show_progress=True)
        _save(path, minilm=torch.nn.functional.normalize(base, dim=-1).numpy(), semantic=model.text.project(base).numpy(),
              phonetic=model.phonetic.embed_texts(chosen.passages).astype(np.float16))
    with np.load(path) as f:
        return {k: f[k].astype(np.float32) for k in f.files}


@torch.no_grad()
def query_halves(model, texts: list[str]) -> dict[str, np.ndarray]:
    base = model.text.encode_base([t or " " for t in texts], 64)
    return {"minilm": torch.nn.functional.normalize(base, dim=-1).numpy(), "semantic": model.text.project(base).numpy(),
            "phonetic": model.phonetic.embed_texts([t or " " for t in texts])}


def score_systems(model, passages: dict, semantic: np.ndarray, logits: list[np.ndarray], transcripts: list[str] | None,
                  truth: list[str], soft: SoftDecoding, reranker: KeywordReranker, texts: list[str],
                  speech_semantic: bool = True) -> dict[str, np.ndarray]:
    """Each system's (queries, passages) scores. Without `speech_semantic` (a family the speech tower's
    semantic half heard, benchmarked on a model that spells its semantic half instead), the systems
    that read that half are left out, and a served query that spells no word is ranked by its phonetic half alone."""
    w = model.config.phonetic_weight
    greedy = model.phonetic.vectors_from_logits(logits) @ passages["phonetic"].T
    softer = model.phonetic.vectors_from_logits(logits, soft) @ passages["phonetic"].T
    scores = {}
    if speech_semantic:
        sem = semantic @ passages["semantic"].T
        scores = {"seal (greedy 1-best, control)": (1 - w) * sem + w * greedy,
                  "seal (soft posteriors)": (1 - w) * sem + w * softer}
        scores["seal + keywords"] = keyword_scores(reranker, scores["seal (soft posteriors)"], logits, texts)
    else:
        semantic = np.zeros_like(semantic)
    if reranker.decoder is not None:  # what ask and serve do: the KB's phoneme model decodes (and spells), then keywords re-rank
        decoder = reranker.decoder
        joined = model.join(semantic, model.phonetic.vectors_from_logits(logits, soft))  # as `encode_clips` gives them
        vectors = np.stack([decoder.query_vector(model, v, x) for v, x in zip(joined, logits)])
        d = model.config.dim  # each query's dot product with each passage's joined vector, as the index scores it
        served = np.sqrt(1 - w) * vectors[:, :d] @ passages["semantic"].T + np.sqrt(w) * vectors[:, d:] @ passages["phonetic"].T
        scores["seal + KB decoding + keywords (as served)"] = keyword_scores(reranker, served, logits, texts)
        if decoder.speller is not None:
            halves = [decoder.spelled_semantic(model, decoder.nbest(x) if len(x) else []) for x in logits]
            spelled = np.concatenate([h if h is not None else np.zeros((1, model.config.dim), np.float32) for h in halves])
            scores["seal/spelled semantic half"] = spelled @ passages["semantic"].T
    if speech_semantic:
        scores["seal/semantic half"] = sem
    scores.update({"seal/phonetic half, greedy": greedy, "seal/phonetic half, soft": softer})
    if transcripts is not None:
        q = query_halves(model, transcripts)
        scores["cascade beam 5, same text tower"] = (1 - w) * q["semantic"] @ passages["semantic"].T + w * q["phonetic"] @ passages["phonetic"].T
        scores["cascade beam 5, MiniLM alone"] = q["minilm"] @ passages["minilm"].T
    q = query_halves(model, truth)
    scores["text oracle, same text tower"] = (1 - w) * q["semantic"] @ passages["semantic"].T + w * q["phonetic"] @ passages["phonetic"].T
    return scores


def soft_grid(model, passages: dict, semantic: np.ndarray, logits: list[np.ndarray], chosen: EvalSet) -> list[dict]:
    """Top-1 / MRR@10 of the joined and phonetic-only scores for each soft setting (validation only)."""
    w = model.config.phonetic_weight
    sem = semantic @ passages["semantic"].T
    golds = [q.gold for q in chosen.queries]
    rows = []
    settings = [None] + [SoftDecoding(t, k, 0.02, i) for t in (1.0, 1.5, 2.0, 3.0) for k in (2, 3) for i in (1.0, 0.2, 0.1, 0.05)]
    for soft in settings:
        phon = model.phonetic.vectors_from_logits(logits, soft) @ passages["phonetic"].T
        row = {"setting": "greedy" if soft is None else f"T={soft.temperature} k={soft.top_k} insert={soft.min_insert}"}
        for name, scores in (("joined", (1 - w) * sem + w * phon), ("phonetic", phon)):
            m = summarise(gold_ranks(scores, chosen.passage_ids, golds))
            row[name] = {k: m[k]["mean"] for k in ("top1", "mrr@10")}
        rows.append(row)
    return rows


def latency(model, root: Path, cache: Path, count: int, settings: KeywordSettings) -> dict:
    """Median ms of one 5 s question (FLAC bytes of real fixture speech -> its vector): the speech
    path with the model's soft decoding and with greedy, and the beam-5 cascade (ASR, then the same
    text tower), interleaved clip by clip in one run; search is left out of those, being the same
    for all. Beside them, to hits in the validation knowledge base (1,551 paragraphs, numpy search of
    the cached passage vectors): the soft path's top 5, and with keyword re-ranking as `Retriever`
    does it (vector and recognizer logits from the same states, search of the top `depth`, re-rank)."""
    import io

    import soundfile as sf

    from seal_rag.bench.clips import fixture_clips
    from seal_rag.cascade import Transcriber

    clips = []
    for clip in fixture_clips(root, count + 2, 5.0, 5.0):
        buffer = io.BytesIO()
        sf.write(buffer, clip, SAMPLE_RATE, format="FLAC")
        clips.append(buffer.getvalue())
    kb = val_sets(root, ["piper"], 1)[0]
    halves, w = passage_halves(model, cache, kb), model.config.phonetic_weight
    matrix = np.concatenate([halves["semantic"] * np.sqrt(1 - w), halves["phonetic"] * np.sqrt(w)], axis=1).astype(np.float32)
    reranker = KeywordReranker.from_texts(kb.passages, settings, DecodingSettings())

    def search(vector: np.ndarray, k: int) -> list[Hit]:
        scores = matrix @ vector
        top = np.argpartition(-scores, k)[:k]
        return [Hit(r, str(p), float(scores[p]), kb.passages[p], {}) for r, p in enumerate(top[np.argsort(-scores[top])], 1)]

    def keywords(audio: bytes, decode: bool = False) -> list[Hit]:  # as `Retriever` does it
        vector, logits = served_vector(model, reranker.decoder if decode else None, load_audio(audio))
        return reranker.rerank(logits, search(vector, max(5, settings.depth)))[:5]

    transcriber, soft = Transcriber(beam_size=5), model.phonetic.soft
    systems = {"speech tower, soft posteriors": lambda a: model.embed_audio(a),
               "speech tower, greedy 1-best": lambda a: model.embed_audio(a),
               "speech tower, soft, to top 5": lambda a: search(model.embed_audio(a)[0], 5),
               f"speech tower + keywords, to top 5 (search {settings.depth}, re-rank)": keywords,
               "as served: KB decoding + keywords, to top 5": lambda a: keywords(a, decode=True),
               "cascade beam 5, same text tower": lambda a: model.embed_texts([transcriber.transcribe(load_audio(a)) or " "])}
    times: dict[str, list[float]] = {name: [] for name in systems}
    for i, audio in enumerate(clips):
        for name, run in systems.items():
            model.phonetic.soft = None if "greedy" in name else soft
            start = time.perf_counter()
            run(audio)
            if i >= 2:  # the first two warm up
                times[name].append(1000 * (time.perf_counter() - start))
    model.phonetic.soft = soft
    # The decoding step alone, on the same logits: the part soft posteriors add to, timed in CPU
    # time (other processes on the machine do not inflate it).
    with torch.no_grad():
        logits = [model.phonetic.logits(model.speech.encode_clips([load_audio(a)]))[0] for a in clips[2:]]
    for name, setting in (("phonetic decoding alone, soft", soft), ("phonetic decoding alone, greedy", None)):
        times[name] = []
        for x in logits:
            start = time.process_time()
            for _ in range(5):
                model.phonetic.vectors_from_logits([x], setting)
            times[name].append(1000 * (time.process_time() - start) / 5)
    times["keyword re-ranking alone"] = []
    for audio, x in zip(clips[2:], logits):
        hits = search(model.embed_audio(audio)[0], settings.depth)
        start = time.process_time()
        reranker.rerank(x, hits)
        times["keyword re-ranking alone"].append(1000 * (time.process_time() - start))
    return {name: {"median_ms": float(np.median(t)), "p95_ms": float(np.percentile(t, 95)), "queries": len(t)}
            for name, t in times.items()}


def keyword_settings(items: list[str], parser: argparse.ArgumentParser) -> KeywordSettings:
    """`--keywords NAME=VALUE ...` over the shipped KeywordSettings; a bad item is a usage error."""
    defaults = KeywordSettings()
    names = ", ".join(defaults.__dict__)
    changed = {}
    for item in items:
        name, _, value = item.partition("=")
        if name not in defaults.__dict__:
            parser.error(f"--keywords {for_terminal(item)}: give NAME=VALUE with NAME one of {names}")
        kind = type(getattr(defaults, name))
        try:
            changed[name] = kind(value)
        except ValueError:
            parser.error(f"--keywords {for_terminal(item)}: {name} takes {'a whole number' if kind is int else 'a number'}")
    return KeywordSettings(**changed)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=["val"], help="the validation questions instead of held-out sets")
    parser.add_argument("--sets", nargs="+", default=[], choices=TEXT_SETS + SPEECH_SETS)
    parser.add_argument("--families", nargs="+", default=["piper"], choices=["piper", "flite", "espeak-flite"],
                        help="voices for TTS questions: a family the model held out of training (its voices.json; flite only "
                             "for a model trained without it); espeak-flite: the validation plan's own voices, --split val only")
    parser.add_argument("--conditions", nargs="+", default=["clean", "noisy"], choices=["clean", "noisy"])
    parser.add_argument("--max-queries", type=positive_int, default=None, help="[default: 400 for val; 500 for squad-holdout, 200 for others]")
    parser.add_argument("--model", type=Path, default=MODELS_DIR / DEFAULT_MODEL, help="[default: the shipped model]")
    parser.add_argument("--temperature", type=float, default=None, help="soft decoding [default: the model's config, else 1.0]")
    parser.add_argument("--top-k", type=int, default=None)
    parser.add_argument("--min-prob", type=float, default=None)
    parser.add_argument("--min-insert", type=float, default=None)
    parser.add_argument("--keywords", nargs="+", default=[], metavar="NAME=VALUE",
                        help="KeywordSettings fields for 'seal + keywords' [default: the shipped ones]")
    parser.add_argument("--grid", action="store_true", help="with --split val: print the soft settings' grid")
    parser.add_argument("--no-cascade", action="store_true", help="skip faster-whisper (the slow part)")
    parser.add_argument("--prepare", action="store_true", help="only speak, encode and transcribe into the cache; score nothing")
    parser.add_argument("--latency", type=int, default=0, metavar="N",
                        help="time N 5 s questions instead (soft, greedy, keywords, cascade)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=positive_int, default=1)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/unseen"))
    parser.add_argument("--out", type=Path, default=Path("/tmp/unseen"))
    add_data_argument(parser)
    args = parser.parse_args(argv)
    keywords = keyword_settings(args.keywords, parser)
    try:
        root = data_root(args.data)
    except DataNotFoundError as error:
        parser.error(str(error))
    if not args.split and not args.sets and not args.latency:
        parser.error("give --split val, --sets or --latency")
    if args.split and args.sets:
        parser.error("--split val and --sets are separate runs: held-out sets are for reporting only")
    torch.set_num_threads(args.threads)
    from seal_rag import SpeechEmbedding

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = SpeechEmbedding.from_pretrained(args.model)
    configured = model.phonetic.soft or SoftDecoding()
    soft = SoftDecoding(args.temperature if args.temperature is not None else configured.temperature,
                        args.top_k if args.top_k is not None else configured.top_k,
                        args.min_prob if args.min_prob is not None else configured.min_prob,
                        args.min_insert if args.min_insert is not None else configured.min_insert)
    if args.latency:
        figures = latency(model, root, args.cache, args.latency, keywords)
        print("| 5 s question | median ms | p95 ms |\n|---|---|---|")
        for name, f in figures.items():
            print(f"| {name} | {f['median_ms']:.1f} | {f['p95_ms']:.1f} |")
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "unseen_voices-latency.json").write_text(json.dumps(
            {"model_fingerprint": model.fingerprint, "threads": args.threads, "date": time.strftime("%Y-%m-%d %H:%M:%S"),
             "soft": model.phonetic.soft.__dict__ if model.phonetic.soft else None, "keywords": keywords.__dict__,
             "load_average": os.getloadavg(), "figures": figures}, indent=1))
        return
    halves = model_roles(args.model)
    roles = benchmark_roles(halves, model.config.phonetic_weight, model.config.spelled_weight)
    head_heard = {family for family, role in halves["semantic"].items() if role == "train"}
    if args.split:
        chosen_sets = val_sets(root, args.families, args.max_queries or 400)
    else:
        try:
            speakers = held_out_speakers(args.sets, args.families, roles, args.prepare)
        except ValueError as error:
            parser.error(str(error))
        family = args.families[0]
        chosen_sets = [heldout_set(name, root, args.max_queries or (500 if name == "squad-holdout" else 200), args.seed,
                                   family, speakers) for name in args.sets]
    results = []
    suffix = ("-val" if args.split else "-human" if not any(s.family != "human" for s in chosen_sets)
              else "" if args.families == ["piper"] else f"-{args.families[0]}")
    out_path = args.out / f"unseen_voices{suffix}.json"
    for chosen in chosen_sets:
        runner = Runner(model, args.cache, chosen, args.conditions)
        passages = passage_halves(model, args.cache, chosen)
        runner.run(cascade=not args.no_cascade)
        if args.prepare:
            continue
        reranker = KeywordReranker.from_texts(chosen.passages, keywords, DecodingSettings())
        golds = [q.gold for q in chosen.queries]
        for condition in runner.conditions:
            semantic, logits, transcripts = runner.loaded(condition)
            scores = score_systems(model, passages, semantic, logits, transcripts, [q.text for q in chosen.queries], soft,
                                   reranker, chosen.passages,
                                   speech_semantic=not (model.config.spelled_weight and chosen.family in head_heard))
            systems = {s: summarise(gold_ranks(m, chosen.passage_ids, golds)) for s, m in scores.items()}
            entry = {"set": chosen.name, "voices": chosen.family, "condition": condition,
                     "family_role": roles.get(chosen.family, chosen.family), "queries": len(chosen.queries),
                     "passages": len(chosen.passages), "soft": soft.__dict__, "keywords": keywords.__dict__, "systems": systems}
            if args.grid and args.split:
                entry["grid"] = soft_grid(model, passages, semantic, logits, chosen)
            results.append(entry)
            print(f"\n{chosen.name}, {chosen.family} voices, {condition}: {len(chosen.queries)} questions, {len(chosen.passages)} passages;"
                  f" soft = {soft}; {keywords}")
            print("| system | Top-1 | Top-10 | MRR@10 |\n|---|---|---|---|")
            for system, m in systems.items():
                print(f"| {system} | " + " | ".join(f"{m[k]['mean']:.3f} [{m[k]['low']:.3f}, {m[k]['high']:.3f}]"
                                                    for k in ("top1", "top10", "mrr@10")) + " |")
            for row in entry.get("grid", []):
                print(f"  grid {row['setting']:24s} joined Top-1 {row['joined']['top1']:.3f} MRR {row['joined']['mrr@10']:.3f}"
                      f" | phonetic Top-1 {row['phonetic']['top1']:.3f} MRR {row['phonetic']['mrr@10']:.3f}")
            args.out.mkdir(parents=True, exist_ok=True)
            out_path.write_text(json.dumps({"model": str(args.model), "model_fingerprint": model.fingerprint,
                                            "family_roles": roles, "command": "python -m training.unseen_voices " + " ".join(argv or __import__("sys").argv[1:]),
                                            "date": time.strftime("%Y-%m-%d %H:%M:%S"), "results": results}, indent=1))
    if not args.prepare:
        print(f"wrote {for_terminal(out_path)}")


if __name__ == "__main__":
    run_command(main)

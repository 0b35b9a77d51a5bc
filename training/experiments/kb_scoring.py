"""Issue 32, "use what the knowledge base knows": re-rank the speech tower's top passages with what
the recognizer's posteriors say about each passage's own words (no training), on validation only.

    export SEAL_RAG_DATA=/work/shared/data
    python -m training.experiments.kb_scoring prepare      # cache -> /tmp/exp32/*.npz (loads the model once)
    python -m training.experiments.kb_scoring baseline     # today's joined cosine (soft decoding), to match val_final.log
    python -m training.experiments.kb_scoring grid         # keyword-spotting re-ranking: its settings' grid, 2-fold check
    python -m training.experiments.kb_scoring reduced      # idea 3: n-grams over a reduced phoneme alphabet
    python -m training.experiments.kb_scoring lm           # idea 2: the KB's phoneme n-gram model in CTC prefix beam search
    python -m training.experiments.kb_scoring library      # the chosen setting through seal_rag.keyword_rerank, timed
    python -m training.experiments.kb_scoring library-lm   # lm's chosen setting through seal_rag.kb_decoding, then keywords
    python -m training.experiments.kb_scoring latency-lm --count 20 --threads 2   # a 5 s question through Retriever, with and without it
    python -m training.unseen_voices --latency 20 --threads 2                  # a 5 s question, with and without it

Reads the validation cache of `training.unseen_voices` (`--split val`, piper and espeak-flite,
clean and noisy) through its own `val_sets`, `Runner.loaded` and `passage_halves`; never the
held-out sets.
"""

from __future__ import annotations

import argparse
import json
import math
import time
import warnings
from pathlib import Path

import numpy as np

from seal_rag.bench.metrics import gold_ranks, summarise

OUT = Path("/tmp/exp32")
CACHE = Path("/tmp/unseen")
FAMILIES = ("piper", "espeak-flite")
CONDITIONS = ("clean", "noisy")


def prepare(model_dir: Path) -> None:
    """Each family and condition's semantic and soft-phonetic cosines, logits and golds, and the passages' phonemes."""
    import torch

    from seal_rag import SpeechEmbedding
    from seal_rag.bench.data import data_root
    from seal_rag.phonetic import phonemize

    from ..unseen_voices import Runner, passage_halves, val_sets

    torch.set_num_threads(1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = SpeechEmbedding.from_pretrained(model_dir)
    OUT.mkdir(parents=True, exist_ok=True)
    sets = val_sets(data_root(None), list(FAMILIES), 400)
    passages = passage_halves(model, CACHE, sets[0])
    (OUT / "passages.json").write_text(json.dumps({"ids": sets[0].passage_ids, "texts": sets[0].passages,
                                                   "phonemes": [phonemize(t) for t in sets[0].passages]}))
    np.savez(OUT / "passage_phonetic.npz", phonetic=passages["phonetic"], semantic=passages["semantic"])
    for chosen in sets:
        runner = Runner(model, CACHE, chosen, list(CONDITIONS))
        for condition in CONDITIONS:
            semantic, logits, _ = runner.loaded(condition)
            phon = model.phonetic.vectors_from_logits(logits, model.phonetic.soft)
            np.savez(OUT / f"{chosen.family}_{condition}.npz", semantic=semantic, phonetic=phon,
                     logits=np.concatenate(logits), steps=[len(x) for x in logits],
                     golds=[next(iter(q.gold)) for q in chosen.queries], texts=[q.text for q in chosen.queries],
                     weight=model.config.phonetic_weight)
            print(f"{chosen.family} {condition}: {len(logits)} queries, {np.mean([len(x) for x in logits]):.0f} steps on average")


def load(family: str, condition: str) -> dict:
    with np.load(OUT / f"{family}_{condition}.npz") as f:
        data = {k: f[k] for k in f.files}
    data["logits"] = np.split(data["logits"], np.cumsum(data["steps"])[:-1])
    with np.load(OUT / "passage_phonetic.npz") as f:
        w = float(data["weight"])
        data["joined"] = (1 - w) * data["semantic"] @ f["semantic"].T + w * data["phonetic"] @ f["phonetic"].T
    return data


def passages() -> dict:
    return json.loads((OUT / "passages.json").read_text())


def metrics(scores: np.ndarray, ids: list[str], golds) -> dict[str, float]:
    m = summarise(gold_ranks(scores, ids, [frozenset([g]) for g in golds]))
    return {k: m[k]["mean"] for k in ("top1", "top10", "mrr@10")}



# ---- keyword spotting: the settings' grid ----------------------------------------------------------

def word_costs(reranker, family: str, condition: str, depth: int = 100) -> dict:
    """Per query: its top `depth` passages by the joined cosine, and the mean cost per phoneme of
    each of their words (`KeywordReranker.word_costs`), cached in OUT."""
    path = OUT / f"costs_{family}_{condition}_{depth}.npz"
    if not path.is_file():
        data, texts = load(family, condition), passages()["texts"]
        candidates = np.argsort(-data["joined"], axis=1)[:, :depth]
        costs = np.full((len(candidates), len(reranker.idf)), np.nan, np.float32)
        for q, logits in enumerate(data["logits"]):
            ids = np.unique(np.concatenate([reranker.words_of(texts[p]) for p in candidates[q]]))
            costs[q, ids] = reranker.word_costs(logits, ids)
        np.savez(path, candidates=candidates, costs=costs)
    with np.load(path) as f:
        return {k: f[k] for k in f.files}


def evidence(reranker, costs: dict, depth: int, tolerance: float, length_power: float, idf: str = "kb") -> tuple[np.ndarray, np.ndarray]:
    """`KeywordReranker.evidence` of each query's top `depth` from cached costs; idf "local": IDF
    over those `depth` passages alone instead of the whole knowledge base."""
    texts = passages()["texts"]
    candidates = costs["candidates"][:, :depth]
    out = np.zeros(candidates.shape)
    for q in range(len(candidates)):
        words = [reranker.words_of(texts[p]) for p in candidates[q]]
        weights = reranker.idf
        if idf == "local":
            df = np.bincount(np.concatenate(words), minlength=len(reranker.idf))
            weights = np.log((depth + 1) / (df + 0.5))
        for i, w in enumerate(words):
            found = np.maximum(0.0, 1.0 - costs["costs"][q, w] / tolerance)
            out[q, i] = (weights[w] * found).sum() / max(len(w), 1) ** length_power
    return candidates, out


def fused(joined: np.ndarray, candidates: np.ndarray, evidence: np.ndarray, weight: float, norm: str) -> np.ndarray:
    """Cosine + weight * evidence over each query's candidates (scaled by the best's, or z-scored);
    every other passage below them all."""
    if norm == "max":
        evidence = evidence / np.maximum(evidence.max(axis=1, keepdims=True), 1e-9)
    else:
        evidence = (evidence - evidence.mean(axis=1, keepdims=True)) / (evidence.std(axis=1, keepdims=True) + 1e-9)
    out = joined - 100.0
    rows = np.arange(len(candidates))[:, None]
    out[rows, candidates] = joined[rows, candidates] + weight * evidence
    return out


def grid() -> None:
    """Every setting on every family and condition; then the setting chosen by piper's mean Top-1
    (clean and noisy) on one random half of the questions, scored on the other half (2-fold), and
    on all 400; then KB-wide against candidate-local IDF at the chosen setting."""
    import itertools

    from seal_rag.keyword_rerank import KeywordReranker

    kb = passages()
    reranker = KeywordReranker.from_texts(kb["texts"])
    conditions = [(f, c) for f in FAMILIES for c in CONDITIONS]
    data = {fc: load(*fc) for fc in conditions}
    costs = {fc: word_costs(reranker, *fc) for fc in conditions}

    def row(scores: dict, rows=slice(None)) -> str:
        return " | ".join(f"{m['top1']:.3f} / {m['mrr@10']:.3f}" for m in
                          (metrics(scores[fc][rows], kb["ids"], data[fc]["golds"][rows]) for fc in conditions))

    print("Top-1 / MRR@10 | " + " | ".join(f"{f} {c}" for f, c in conditions))
    print(f"baseline (joined cosine, soft) | {row({fc: data[fc]['joined'] for fc in conditions})}")
    settings, results = [], {}
    for depth, tolerance, power in itertools.product((30, 50, 100), (2.0, 3.0), (0.3, 0.5, 0.7)):
        found = {fc: evidence(reranker, costs[fc], depth, tolerance, power) for fc in conditions}
        for norm, weight in (("max", 0.05), ("max", 0.1), ("max", 0.15), ("z", 0.01), ("z", 0.02), ("z", 0.03)):
            key = (depth, tolerance, power, norm, weight)
            results[key] = {fc: fused(data[fc]["joined"], *found[fc], weight, norm) for fc in conditions}
            settings.append(key)
            print(f"depth={depth} tolerance={tolerance} length_power={power} {norm} weight={weight} | {row(results[key])}", flush=True)
    piper = [fc for fc in conditions if fc[0] == "piper"]

    def chosen_on(rows) -> tuple:
        return max(settings, key=lambda key: np.mean([metrics(results[key][fc][rows], kb["ids"], data[fc]["golds"][rows])["top1"]
                                                    for fc in piper]))

    halves = np.array_split(np.random.default_rng(0).permutation(400), 2)
    for a, b in ((0, 1), (1, 0)):
        key = chosen_on(np.sort(halves[a]))
        rows = np.sort(halves[b])
        print(f"chosen on half {a}: {key}; on half {b}: baseline | {row({fc: data[fc]['joined'] for fc in conditions}, rows)}")
        print(f"  re-ranked | {row(results[key], rows)}")
    key = chosen_on(np.arange(400))
    print(f"chosen on all 400: {key} | {row(results[key])}")
    depth, tolerance, power, norm, weight = key
    local = {fc: fused(data[fc]["joined"], *evidence(reranker, costs[fc], depth, tolerance, power, "local"), weight, norm)
             for fc in conditions}
    print(f"the same with IDF over the {depth} candidates alone | {row(local)}")


# ---- idea 3: n-grams over a reduced phoneme alphabet ---------------------------------------------

# Sounds an unseen voice's recognizer confuses, merged: vowels by place, voiced with voiceless,
# flap with t; length, syllabic mark and glottal stop dropped (read as blank on the query side).
REDUCED = {**{c: "I" for c in "iɪᵻ"}, **{c: "E" for c in "eɛæ"}, **{c: "@" for c in "əɐʌɜɚ"}, **{c: "A" for c in "aɑɔo"},
           **{c: "U" for c in "uʊ"}, **{c: "P" for c in "pb"}, **{c: "T" for c in "tdɾ"}, **{c: "K" for c in "kɡx"},
           **{c: "F" for c in "fv"}, **{c: "D" for c in "θð"}, **{c: "S" for c in "sz"}, **{c: "H" for c in "ʃʒ"},
           **{c: "N" for c in "nŋ"}, **{c: "R" for c in "ɹr"}, "m": "m", "l": "l", "w": "w", "j": "j", "h": "h", " ": " "}


def reduced_logits(logits: np.ndarray, symbols: str) -> tuple[np.ndarray, str]:
    """Recognizer logits over the reduced alphabet: each group's log-sum-exp (dropped symbols join
    the blank, the last class)."""
    groups = sorted(set(REDUCED.values()))
    members = [[i for i, c in enumerate(symbols) if REDUCED.get(c) == g] for g in groups]
    members.append([i for i, c in enumerate(symbols) if c not in REDUCED] + [len(symbols)])
    x = logits.astype(np.float64)
    return np.stack([np.logaddexp.reduce(x[:, m], axis=1) for m in members], axis=1), "".join(groups)


def reduced() -> None:
    """Joined cosine + beta * cosine of soft n-gram counts over the reduced alphabet (IDF fitted on the knowledge base)."""
    from seal_rag.phonetic import (
        PHONEMES,
        PhoneticVectorizer,
        SoftDecoding,
        soft_ngram_counts,
    )

    kb = passages()
    soft = SoftDecoding(1.5, 2, 0.02, 0.1)  # the shipped model's (seal-base-minilm/config.json)
    texts = ["".join(REDUCED.get(c, "") for c in p) for p in kb["phonemes"]]
    vectorizer = PhoneticVectorizer.fit(texts, 8192)
    passage_vectors = vectorizer.vectors(texts)
    print("beta: Top-1 / MRR@10 | " + " | ".join(f"{f} {c}" for f in FAMILIES for c in CONDITIONS), flush=True)
    rows: dict[float, list[str]] = {}
    for family in FAMILIES:
        for condition in CONDITIONS:
            data = load(family, condition)
            query = []
            for logits in data["logits"]:
                merged, symbols = reduced_logits(logits, PHONEMES)
                query.append(soft_ngram_counts(merged, len(symbols), symbols, soft, vectorizer.bucket))
            cosine = vectorizer.count_vectors(query) @ passage_vectors.T
            for beta in (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0):
                m = metrics(data["joined"] + beta * cosine, kb["ids"], data["golds"])
                rows.setdefault(beta, []).append(f"{m['top1']:.3f} / {m['mrr@10']:.3f}")
            m = metrics(cosine, kb["ids"], data["golds"])
            rows.setdefault("reduced alone", []).append(f"{m['top1']:.3f} / {m['mrr@10']:.3f}")
    for beta, cells in rows.items():
        print(f"{beta} | " + " | ".join(cells))


# ---- idea 2: a phoneme n-gram model of the knowledge base in CTC prefix beam search ---------------

class PhonemeLM:
    """Witten-Bell interpolated n-gram model over phoneme symbols (word gap included) of the knowledge base."""

    def __init__(self, texts: list[str], order: int = 5):
        from collections import Counter, defaultdict

        self.order = order
        self.counts = [defaultdict(Counter) for _ in range(order)]  # [n][context] -> next symbol counts
        self.vocab = sorted({c for t in texts for c in t})
        for text in texts:
            padded = " " * (order - 1) + " ".join(text.split()) + " "
            for i in range(order - 1, len(padded)):
                for n in range(order):
                    self.counts[n][padded[i - n:i]][padded[i]] += 1
        self.cache: dict[tuple[str, str], float] = {}

    def logp(self, context: str, symbol: str) -> float:
        context = (" " * (self.order - 1) + context)[-(self.order - 1):]
        key = (context, symbol)
        if key not in self.cache:
            p = 1.0 / (len(self.vocab) + 1)
            for n in range(self.order):
                seen = self.counts[n].get(context[len(context) - n:] if n else "")
                if seen:
                    total, types = sum(seen.values()), len(seen)
                    p = (seen[symbol] + types * p) / (total + types)
            self.cache[key] = math.log(p)
        return self.cache[key]


def prefix_beam(logits: np.ndarray, symbols: str, lm: PhonemeLM | None, alpha: float, bonus: float, beam: int = 10,
                prune: float = 1e-3) -> list[tuple[str, float]]:
    """CTC prefix beam search with shallow fusion: the `beam` best prefixes and their log scores."""
    blank = len(symbols)
    logp = log_posteriors_np(logits)
    beams: dict[str, tuple[float, float]] = {"": (0.0, -math.inf)}  # prefix -> (log p ending in blank, in a symbol)
    for t in range(len(logp)):
        step = logp[t]
        kept = [c for c in np.flatnonzero(step >= math.log(prune))]
        new: dict[str, list[float]] = {}

        def add(prefix: str, which: int, value: float, new: dict = new) -> None:
            entry = new.setdefault(prefix, [-math.inf, -math.inf])
            entry[which] = np.logaddexp(entry[which], value)

        for prefix, (pb, pnb) in beams.items():
            total = np.logaddexp(pb, pnb)
            for c in kept:
                if c == blank:
                    add(prefix, 0, total + step[c])
                    continue
                symbol = symbols[c]
                extend = step[c] + (alpha * lm.logp(prefix, symbol) + bonus if lm is not None else bonus)
                if prefix and prefix[-1] == symbol:
                    add(prefix, 1, pnb + step[c])  # the same symbol held
                    add(prefix + symbol, 1, pb + extend)  # said again after a blank
                else:
                    add(prefix + symbol, 1, total + extend)
        beams = dict(sorted(((k, (v[0], v[1])) for k, v in new.items()), key=lambda kv: -np.logaddexp(*kv[1]))[:beam])
    return [(prefix, float(np.logaddexp(*scores))) for prefix, scores in beams.items()]


def log_posteriors_np(logits: np.ndarray) -> np.ndarray:
    x = logits.astype(np.float64)
    x = x - x.max(axis=1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=1, keepdims=True))


def nbest_counts(nbest: list[tuple[str, float]], bucket, temperature: float = 1.0) -> dict[int, float]:
    """Expected n-gram bucket counts under the n-best list's posterior (its scores' softmax)."""
    from seal_rag.phonetic import phoneme_ngrams

    scores = np.array([score for _, score in nbest]) / temperature
    weights = np.exp(scores - scores.max())
    weights /= weights.sum()
    counts: dict[int, float] = {}
    for (text, _), w in zip(nbest, weights):
        for gram in phoneme_ngrams(" ".join(text.split())):
            key = bucket(gram)
            counts[key] = counts.get(key, 0.0) + float(w)
    return counts


def lm_decoding(families=FAMILIES) -> None:
    """Soft counts replaced by the n-best's expected counts, with and without the knowledge base's
    phoneme model; joined cosine, then keyword re-ranking on top."""
    import torch

    from seal_rag import SpeechEmbedding
    from seal_rag.keyword_rerank import KeywordReranker
    from seal_rag.phonetic import PHONEMES, soft_ngram_counts

    from seal_rag.bench.served import keyword_scores

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = SpeechEmbedding.from_pretrained(Path("seal_rag/models/seal-base-minilm"))
    torch.set_num_threads(1)
    kb = passages()
    lm = PhonemeLM(kb["phonemes"])
    reranker = KeywordReranker.from_texts(kb["texts"])
    vectorizer = model.phonetic.vectorizer
    with np.load(OUT / "passage_phonetic.npz") as f:
        semantic_kb, phonetic_kb = f["semantic"], f["phonetic"]
    w = model.config.phonetic_weight
    print("setting | " + " | ".join(f"{f} {c} (then keywords)" for f in families for c in CONDITIONS), flush=True)
    settings = [(alpha, bonus, False) for alpha, bonus in ((0.0, 0.0), (0.3, 0.0), (0.3, 1.0), (0.6, 1.0), (1.0, 2.0))]
    for alpha, bonus, mix in settings + [(0.3, 1.0, True), (0.6, 1.0, True)]:
        cells, start = [], time.process_time()
        for family in families:
            for condition in CONDITIONS:
                data = load(family, condition)
                counts = [nbest_counts(prefix_beam(x, PHONEMES, lm if alpha else None, alpha, bonus), vectorizer.bucket)
                          for x in data["logits"]]
                if mix:  # half the n-best's expected counts, half the shipped soft counts
                    soft = [soft_ngram_counts(x, len(PHONEMES), PHONEMES, model.phonetic.soft, vectorizer.bucket) for x in data["logits"]]
                    counts = [{k: (a.get(k, 0.0) + b.get(k, 0.0)) / 2 for k in a.keys() | b.keys()} for a, b in zip(counts, soft)]
                joined = (1 - w) * data["semantic"] @ semantic_kb.T + w * vectorizer.count_vectors(counts) @ phonetic_kb.T
                m = metrics(joined, kb["ids"], data["golds"])
                k = metrics(keyword_scores(reranker, joined, data["logits"], kb["texts"]), kb["ids"], data["golds"])
                cells.append(f"{m['top1']:.3f} / {m['mrr@10']:.3f} ({k['top1']:.3f} / {k['mrr@10']:.3f})")
        print(f"alpha={alpha} bonus={bonus}{' mixed with soft counts' if mix else ''} | " + " | ".join(cells) + f" [{time.process_time() - start:.0f} s]", flush=True)


def baseline() -> None:
    ids = passages()["ids"]
    for family in FAMILIES:
        for condition in CONDITIONS:
            data = load(family, condition)
            m = metrics(data["joined"], ids, data["golds"])
            print(f"{family:13s} {condition:6s} joined soft: Top-1 {m['top1']:.3f} Top-10 {m['top10']:.3f} MRR@10 {m['mrr@10']:.3f}")


def library(settings=None) -> None:
    """The shipped module (`seal_rag.keyword_rerank`) on every family and condition, timed per query (CPU)."""
    from seal_rag.keyword_rerank import KeywordReranker, KeywordSettings

    from seal_rag.bench.served import keyword_scores

    settings = settings or KeywordSettings()
    kb = passages()
    start = time.process_time()
    reranker = KeywordReranker.from_texts(kb["texts"], settings)
    print(f"word table of {len(kb['texts'])} passages: {time.process_time() - start:.1f} s CPU; {settings}")
    for family in FAMILIES:
        for condition in CONDITIONS:
            data, times = load(family, condition), []
            fused = keyword_scores(reranker, data["joined"], data["logits"], kb["texts"], times)
            base, m = metrics(data["joined"], kb["ids"], data["golds"]), metrics(fused, kb["ids"], data["golds"])
            print(f"{family:13s} {condition:6s} Top-1 {base['top1']:.3f} -> {m['top1']:.3f}  MRR@10 {base['mrr@10']:.3f} -> "
                  f"{m['mrr@10']:.3f}  Top-10 {base['top10']:.3f} -> {m['top10']:.3f}  re-rank {1000 * np.median(times):.1f} ms median,"
                  f" {1000 * np.percentile(times, 95):.1f} p95 (CPU, {np.mean(data['steps']) / 25:.1f} s clips)", flush=True)


def library_lm(model_dir: Path) -> None:
    """The `lm` step's chosen setting through the library, as `Retriever` runs it: the query's vector
    (`SpeechEmbedding.join` of its cached halves, what `encode_clips` gives) decoded again by the
    re-ranker's `kb_decoding.KBDecoder`, searched, then re-ranked; decoding timed per query (CPU)."""
    import torch

    from seal_rag.kb_decoding import DecodingSettings
    from seal_rag.keyword_rerank import KeywordReranker

    from seal_rag.bench.served import keyword_scores

    torch.set_num_threads(1)
    model = _model(model_dir)
    kb = passages()
    start = time.process_time()
    reranker = KeywordReranker.from_texts(kb["texts"], decoding=DecodingSettings())
    print(f"word table and phoneme model of {len(kb['texts'])} passages: {time.process_time() - start:.1f} s CPU; "
          f"{reranker.decoder.settings}")
    with np.load(OUT / "passage_phonetic.npz") as f:
        matrix = model.join(f["semantic"], f["phonetic"])
    for family in FAMILIES:
        for condition in CONDITIONS:
            data, times, decoded = load(family, condition), [], []
            vectors = model.join(data["semantic"], data["phonetic"])
            for vector, logits in zip(vectors, data["logits"]):
                begin = time.process_time()
                decoded.append(reranker.decoder.query_vector(model, vector, logits))
                times.append(time.process_time() - begin)
            plain = keyword_scores(reranker, vectors @ matrix.T, data["logits"], kb["texts"])
            fused = keyword_scores(reranker, np.array(decoded) @ matrix.T, data["logits"], kb["texts"])
            base, m = metrics(plain, kb["ids"], data["golds"]), metrics(fused, kb["ids"], data["golds"])
            print(f"{family:13s} {condition:6s} keywords Top-1 {base['top1']:.3f} -> with KB decoding {m['top1']:.3f}  MRR@10 "
                  f"{base['mrr@10']:.3f} -> {m['mrr@10']:.3f}  Top-10 {base['top10']:.3f} -> {m['top10']:.3f}  decoding "
                  f"{1000 * np.median(times):.1f} ms median, {1000 * np.percentile(times, 95):.1f} p95 (CPU, "
                  f"{np.mean(data['steps']) / 25:.1f} s clips)", flush=True)


def _model(model_dir: Path):
    from seal_rag import SpeechEmbedding

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return SpeechEmbedding.from_pretrained(model_dir)


def latency_lm(model_dir: Path, count: int, threads: int) -> None:
    """Median and p95 ms of one 5 s question (real fixture speech) -> its top 5 of the validation
    knowledge base through `Retriever.retrieve_clip` (numpy search of the cached passage vectors):
    keyword re-ranking alone, and with the knowledge base's decoding first, interleaved clip by clip;
    then each stage's own seconds, and the decoding alone in CPU time."""
    import torch

    from seal_rag.bench.clips import fixture_clips
    from seal_rag.bench.data import data_root
    from seal_rag.kb_decoding import DecodingSettings
    from seal_rag.keyword_rerank import KeywordReranker
    from seal_rag.retrieve import Retriever
    from seal_rag.store import Hit

    torch.set_num_threads(threads)
    model = _model(model_dir)
    kb = passages()
    with np.load(OUT / "passage_phonetic.npz") as f:
        matrix = model.join(f["semantic"], f["phonetic"])

    class Index:  # what `Retriever` reads of a `SealIndex`: numpy search of the cached passage vectors
        def query(self, vector: np.ndarray, k: int, where=None) -> list[Hit]:
            scores = matrix @ vector
            top = np.argpartition(-scores, k)[:k]
            return [Hit(r, str(p), float(scores[p]), kb["texts"][p], {}) for r, p in enumerate(top[np.argsort(-scores[top])], 1)]

    with_lm = KeywordReranker.from_texts(kb["texts"], decoding=DecodingSettings())
    keywords = KeywordReranker.from_texts(kb["texts"])
    retrievers = {"keywords": Retriever(model, Index(), keywords=keywords),
                  "KB decoding + keywords": Retriever(model, Index(), keywords=with_lm)}
    times: dict[str, list[float]] = {name: [] for name in retrievers}
    stages: dict[str, list[float]] = {}
    encoded = []  # each timed clip's vector and recognizer logits
    for i, clip in enumerate(fixture_clips(data_root(None), count + 2, 5.0, 5.0)):
        for name, retriever in retrievers.items():
            start = time.perf_counter()
            found = retriever.retrieve_clip(clip, 5)
            if i >= 2:  # the first two warm up
                times[name].append(1000 * (time.perf_counter() - start))
                for stage, seconds in found.timings.items():
                    stages.setdefault(f"{name}: {stage}", []).append(1000 * seconds)
        if i >= 2:
            encoded.append(model.encode_clips([clip]))
    times["KB decoding alone (CPU)"] = []
    for vectors, x in encoded:
        start = time.process_time()
        with_lm.decoder.query_vector(model, vectors[0], x[0])
        times["KB decoding alone (CPU)"].append(1000 * (time.process_time() - start))
    print(f"| 5 s question, {threads} threads, {count} clips, {len(kb['texts'])} paragraphs | median ms | p95 ms |\n|---|---|---|")
    for name, t in {**times, **stages}.items():
        print(f"| {name} | {np.median(t):.1f} | {np.percentile(t, 95):.1f} |")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=["prepare", "baseline", "grid", "reduced", "lm", "library", "library-lm", "latency-lm"])
    parser.add_argument("--model", type=Path, default=Path("seal_rag/models/seal-base-minilm"))
    parser.add_argument("--count", type=int, default=20, help="latency-lm: 5 s questions timed")
    parser.add_argument("--threads", type=int, default=2, help="latency-lm: torch threads")
    args = parser.parse_args(argv)
    start = time.time()
    if args.step == "prepare":
        prepare(args.model)
    elif args.step == "baseline":
        baseline()
    elif args.step == "grid":
        grid()
    elif args.step == "reduced":
        reduced()
    elif args.step == "lm":
        lm_decoding()
    elif args.step == "library":
        library()
    elif args.step == "library-lm":
        library_lm(args.model)
    elif args.step == "latency-lm":
        latency_lm(args.model, args.count, args.threads)
    print(f"[{time.time() - start:.0f} s]")


if __name__ == "__main__":
    main()

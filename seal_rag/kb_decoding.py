"""Decode a spoken query with what the knowledge base says: a phoneme n-gram model of its text in CTC beam search.

The phonetic half reads the recognizer's posteriors as they are (`phonetic.soft_ngram_counts`).
A voice the recognizer never heard blurs them; but the question is asked of one knowledge base,
and its words are known. Here the knowledge base's own phonemes (espeak-ng's, as the passages'
n-grams) become a Witten-Bell 5-gram model over phoneme symbols (word gap included), and CTC
prefix beam search with that model (shallow fusion, no training) gives the query's n-best
phoneme strings. Their expected n-gram counts, averaged with the soft counts, form the query's
phonetic half; passages are untouched (no re-indexing). For a model with `spelled_weight`, the
best decodings are also spelled with the knowledge base's words, and the text tower's vectors of
them, averaged, are the query's semantic half (`spelling`).

    >>> decoder = KBDecoder.from_texts(index.all_texts())  # once per knowledge base
    >>> vectors, logits = model.encode_clips([clip])
    >>> vector = decoder.query_vector(model, vectors[0], logits[0])  # then search, then keyword re-ranking

On validation (issue 32; `training/experiments/kb_scoring.py lm`, 400 questions against 1,551
paragraphs), with keyword re-ranking after it, Top-1 on a voice family training never heard
(piper) went from 0.675 to 0.690 clean and 0.660 to 0.677 noisy; on the training families'
validation voices from 0.598 to 0.615 and 0.547 to 0.585 (`kb_scoring library-lm`, through this
module). It costs about 9 ms of CPU for a 5 s question (the beam in arrays, each context's
probabilities computed once; steps where only the blank is likely skip the search).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .phonetic import PHONEMES, phoneme_ngrams, phonemize
from .spelling import Speller


@dataclass(frozen=True)
class DecodingSettings:
    """The knowledge base's phoneme model in beam search (chosen on validation, issue 32).

    order: the phoneme n-gram model's order (symbols of context + 1).
    weight: the model's log probability's weight beside the recognizer's (shallow fusion).
    bonus: added per symbol emitted (balances the model's cost of each symbol).
    beam: prefixes kept per step; their scores' softmax weighs the n-best's n-gram counts.
    prune: classes below this posterior at a step are not followed (a step where only the
        blank is above it changes no prefix, and costs next to nothing).
    mix: the n-best's share of the query's counts; the rest are the phonetic half's own counts.
    """

    order: int = 5
    weight: float = 0.6
    bonus: float = 1.0
    beam: int = 10
    prune: float = 1e-3
    mix: float = 0.5


# Decodings spelled for the semantic half: on piper validation the 5-best's vectors averaged beat the
# best one's (as served, MRR@10 0.811 / 0.789 clean / noisy against 0.798 / 0.783; `spelled_semantic.py`).
SPELLED = 5
TABLE_PARTS = ("contexts", "first", "totals", "types", "symbols", "counts")  # of each context length's table


class PhonemeLM:
    """Witten-Bell interpolated n-gram model of phoneme strings (words separated by single spaces).

    Each string is read as its symbols between `order - 1` word gaps before and one after. A
    context is its last `order - 1` symbols as one integer, a state (`start`, then `advance`);
    `rows(states)` gives the log probability of every symbol of `symbols` after each.
    """

    def __init__(self, phonemes: Sequence[str], order: int = 5, symbols: str = PHONEMES):
        counts = NgramCounts(order, symbols)
        counts.add(phonemes)
        self._build(counts)

    @classmethod
    def from_counts(cls, counts: NgramCounts) -> PhonemeLM:
        """The model of every string `counts` was given, page by page."""
        lm = cls.__new__(cls)
        lm._build(counts)
        return lm

    def _build(self, counts: NgramCounts) -> None:
        self._shape(counts.order, counts.symbols)
        self.floor = counts.floor()
        self._tables = []  # per context length n: its contexts (sorted), their totals and types, and (symbol, count) runs
        for keys, n_counts in counts.tables():
            contexts, first = np.unique(keys // self.size, return_index=True)
            totals = np.add.reduceat(n_counts, first) if len(keys) else np.zeros(0, np.int64)
            types = np.diff(np.append(first, len(keys)))
            self._tables.append((contexts, first, totals, types, keys % self.size, n_counts))

    def _shape(self, order: int, symbols: str) -> None:
        self.order, self.symbols = order, symbols
        self.size = len(symbols)
        self.states = self.size ** (order - 1)
        space = symbols.index(" ")
        self.start = sum(space * self.size ** j for j in range(order - 1))  # word gaps only
        self._p: dict[int, np.ndarray] = {}  # (context length, context) -> next-symbol probabilities, for contexts seen
        self._rows: dict[int, np.ndarray] = {}  # state -> next-symbol log probabilities

    def arrays(self) -> dict[str, np.ndarray]:
        """The model's counts as plain arrays (`from_arrays` reads them back), to keep on disk."""
        out = {"floor": np.array(self.floor)}
        for n, (contexts, first, totals, types, symbols, counts) in enumerate(self._tables):
            out |= {f"{n}.{name}": array for name, array in
                    zip(TABLE_PARTS, (contexts, first, totals, types, symbols, counts))}
        return out

    @classmethod
    def from_arrays(cls, arrays, order: int, symbols: str = PHONEMES) -> PhonemeLM:
        """The model `arrays()` gave (KeyError where one is missing)."""
        lm = cls.__new__(cls)
        lm._shape(order, symbols)
        lm.floor = float(arrays["floor"])
        lm._tables = []
        for n in range(order):
            contexts, first, totals, types, next_symbols, counts = (np.asarray(arrays[f"{n}.{name}"]) for name in TABLE_PARTS)
            ok = (all(a.ndim == 1 and a.dtype.kind == "i" for a in (contexts, first, totals, types, next_symbols, counts))
                  and len(first) == len(totals) == len(types) == len(contexts) and len(next_symbols) == len(counts)
                  and (not len(contexts) or (contexts.min() >= 0 and contexts.max() < lm.size ** n
                                             and first.min() >= 0 and (first + types).max() <= len(counts)))
                  and (not len(counts) or (next_symbols.min() >= 0 and next_symbols.max() < lm.size))
                  and bool((np.diff(contexts) > 0).all()))
            if not ok or not 0 < lm.floor <= 1:
                raise ValueError(f"inconsistent phoneme model table of context length {n}")
            lm._tables.append((contexts, first, totals, types, next_symbols, counts))
        return lm

    def advance(self, states: np.ndarray | int, symbols: np.ndarray | int) -> np.ndarray | int:
        """The states after each of `states` is followed by its symbol."""
        return (states * self.size + symbols) % self.states

    def logp(self, context: Sequence[int]) -> np.ndarray:
        """`(len(symbols),)` log probabilities of the next symbol after `context` (symbol ids, from a string's start)."""
        state = self.start
        for symbol in context:
            state = self.advance(state, symbol)
        return self.rows(np.array([state]))[0]

    def rows(self, states: np.ndarray) -> np.ndarray:
        """`(len(states), len(symbols))` log probabilities of the next symbol after each state, each
        state's computed once and cached."""
        out = np.empty((len(states), self.size))
        for i, state in enumerate(states.tolist()):
            row = self._rows.get(state)
            if row is None:
                if len(self._rows) > 100_000:  # a long-running server: the caches are rebuilt, not grown without end
                    self._rows.clear()
                    self._p.clear()
                n = next((n for n in range(self.order - 1, 0, -1) if _find(self._tables[n][0], state % self.size ** n) is not None), 0)
                row = self._rows[state] = np.log(self._probabilities(n, state % self.size ** n))
            out[i] = row
        return out

    def _probabilities(self, n: int, context: int) -> np.ndarray:
        """Witten-Bell's interpolation for a context of length n that the strings hold (or n = 0):
        its counts, smoothed by its suffix's probabilities (a context seen is a suffix seen)."""
        key = n * self.states + context
        p = self._p.get(key)
        if p is None:
            lower = self._probabilities(n - 1, context % self.size ** (n - 1)) if n else np.full(self.size, self.floor)
            contexts, first, totals, types, symbols, counts = self._tables[n]
            i = _find(contexts, context)
            if i is None:  # only for n = 0, with no strings at all
                return lower
            seen = np.zeros(self.size)
            seen[symbols[first[i]:first[i] + types[i]]] = counts[first[i]:first[i] + types[i]]
            p = self._p[key] = (seen + types[i] * lower) / (totals[i] + types[i])
        return p


def _find(sorted_values: np.ndarray, value: int) -> int | None:
    """Where `value` is in `sorted_values`, or None. (A dict of a million contexts would cost
    about 100 bytes each, and seconds to build every time the tables are read.)"""
    i = int(np.searchsorted(sorted_values, value))
    return i if i < len(sorted_values) and sorted_values[i] == value else None


class NgramCounts:
    """How often each symbol follows each context of 0 to `order - 1` symbols, over strings given a
    page at a time (`add`). Memory holds the distinct n-grams, not the strings: at a million
    passages their symbols as one array of integers took gigabytes."""

    MERGE_EVERY = 2_000_000  # n-grams counted in pages before a merge (or as many as are merged: each merge sorts them all)

    def __init__(self, order: int = 5, symbols: str = PHONEMES):
        self.order, self.symbols, self.size = order, symbols, len(symbols)
        self.strings = 0
        self._points = np.zeros(0, np.uint32)  # distinct code points of the strings (the floor's alphabet)
        self._merged = [(np.zeros(0, np.int64), np.zeros(0, np.int64)) for _ in range(order)]
        self._pending: list[list[tuple[np.ndarray, np.ndarray]]] = [[] for _ in range(order)]
        self._pending_size = 0

    def add(self, phonemes: Sequence[str]) -> None:
        """Count the n-grams of more strings (words separated by whitespace)."""
        if not len(phonemes):
            return
        self.strings += len(phonemes)
        self._points = np.union1d(self._points, _code_points("".join(phonemes)))
        ids, starts = _padded_ids(phonemes, self.symbols, self.order - 1)
        valid = np.ones(len(ids), bool)  # positions whose order - 1 symbols before are all of one string
        for k in range(self.order - 1):
            valid[starts + k] = False
        at = np.flatnonzero(valid)
        code = np.zeros(len(at), np.int64)  # the n symbols before each position as one integer, oldest first
        for n in range(self.order):
            if n:
                code += ids[at - n] * self.size ** (n - 1)
            self._pending[n].append(np.unique(code * self.size + ids[at], return_counts=True))
        self._pending_size += len(at)
        if self._pending_size >= max(self.MERGE_EVERY, len(self._merged[-1][0])):
            self._merge()

    def _merge(self) -> None:
        for n in range(self.order):
            if self._pending[n]:
                keys = np.concatenate([self._merged[n][0]] + [k for k, _ in self._pending[n]])
                counts = np.concatenate([self._merged[n][1]] + [c for _, c in self._pending[n]])
                unique, inverse = np.unique(keys, return_inverse=True)
                self._merged[n] = (unique, np.bincount(inverse, counts, len(unique)).round().astype(np.int64))
                self._pending[n] = []
        self._pending_size = 0

    def tables(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per context length n: every (context * size + symbol) key seen, sorted, and its count."""
        self._merge()
        return list(self._merged)

    def floor(self) -> float:
        """The zero-order floor: uniform over the characters the strings hold, and one more."""
        return 1.0 / (len(self._points) + 1)


def _code_points(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), np.uint32)


def _padded_ids(phonemes: Sequence[str], symbols: str, gaps: int) -> tuple[np.ndarray, np.ndarray]:
    """Each string's symbol ids between `gaps` word gaps before and one after, all strings end to
    end, and where each starts. A run of whitespace is one word gap; characters outside `symbols`
    are dropped. One pass over the joined text in numpy (a Python loop per character took seconds
    for a knowledge base of 20,000 passages)."""
    words = [" ".join(p.split()) for p in phonemes]
    codes = _code_points("".join(f"{' ' * gaps}{w} " for w in words))
    table = np.full(max(map(ord, symbols)) + 2, -1, np.int64)  # code point -> symbol id; the last slot: any other
    table[[ord(c) for c in symbols]] = np.arange(len(symbols))
    ids = table[np.minimum(codes, len(table) - 1)]
    owner = np.repeat(np.arange(len(words)), [gaps + len(w) + 1 for w in words])
    known = ids >= 0
    lengths = np.bincount(owner[known], minlength=len(words))
    return ids[known], np.cumsum(lengths) - lengths


def prefix_beam_search(log_probs: np.ndarray, blank: int, lm: PhonemeLM | None, weight: float, bonus: float,
                       beam: int = 10, prune: float = 1e-3) -> list[tuple[tuple[int, ...], float]]:
    """CTC prefix beam search with shallow fusion: the `beam` best label sequences and their log scores.

    A prefix's score is log P_ctc(prefix) + weight * log P_lm(prefix) + bonus * len(prefix). The
    beam is held in arrays and each step's extensions are scored at once; a step where no class
    but the blank reaches `prune` only folds each prefix's two endings together.

    Args:
        log_probs: `(steps, classes)` log posteriors of one clip; `blank` is CTC's blank class.
        lm: the phoneme model (`PhonemeLM`) over classes `0 .. blank - 1`, or None (bonus alone).
    """
    neg = -np.inf
    log_probs = np.asarray(log_probs, np.float64)
    kept = log_probs >= math.log(prune)
    blank_kept = kept[:, blank].copy()
    kept[:, blank] = False
    symbols_kept = kept.any(axis=1)

    def fused(states: np.ndarray) -> np.ndarray:  # each symbol's weighted LM score + bonus after each state
        return np.full((len(states), blank), bonus) if lm is None else weight * lm.rows(states) + bonus

    prefixes: list[tuple[int, ...]] = [()]
    pb, pnb = np.zeros(1), np.full(1, neg)  # log P of each prefix ending in a blank, in its last symbol
    last = np.full(1, -1)  # each prefix's last symbol (-1: none; indexes the blank's slot below)
    state = np.array([lm.start if lm is not None else 0])
    after = fused(state)  # (beam, blank)
    parent = np.full(1, -1)  # each prefix's parent (itself less its last symbol) in the beam, or -1
    column = np.full(blank + 1, -1)  # a kept symbol -> its column this step
    for t in range(len(log_probs)):
        step = log_probs[t]
        total = np.logaddexp(pb, pnb)
        stay = step[blank] if blank_kept[t] else neg
        if not symbols_kept[t]:  # no symbol is said here: every prefix now ends in a blank (or is gone)
            pb, pnb = total + stay, np.full(len(pb), neg)
            continue
        ks = np.flatnonzero(kept[t])
        column[ks] = np.arange(len(ks))
        stay_b = total + stay
        stay_nb = np.where(column[last] >= 0, pnb + step[last], neg)  # the last symbol held
        extend = np.where(last[:, None] == ks, pb[:, None], total[:, None]) + step[ks] + after[:, ks]
        # A prefix already in the beam, reached again from its parent: one entry, both paths.
        child = np.flatnonzero((parent >= 0) & (column[last] >= 0))
        if len(child):
            rows, cols = parent[child], column[last[child]]
            stay_nb[child] = np.logaddexp(stay_nb[child], extend[rows, cols])
            extend[rows, cols] = neg
        column[ks] = -1
        scores = np.concatenate([np.logaddexp(stay_b, stay_nb), extend.ravel()])
        best = np.argsort(-scores, kind="stable")[:beam]
        best = best[np.isfinite(scores[best])]
        stays, grown = best[best < len(pb)], best[best >= len(pb)] - len(pb)
        rows, cols = np.divmod(grown, len(ks))
        symbols = ks[cols]
        new_state = lm.advance(state[rows], symbols) if lm is not None else state[rows]
        prefixes = [prefixes[i] for i in stays] + [prefixes[r] + (s,) for r, s in zip(rows.tolist(), symbols.tolist())]
        pb = np.concatenate([stay_b[stays], np.full(len(grown), neg)])
        pnb = np.concatenate([stay_nb[stays], extend[rows, cols]])
        last = np.concatenate([last[stays], symbols])
        state = np.concatenate([state[stays], new_state])
        after = np.concatenate([after[stays], fused(new_state)])
        position = {p: i for i, p in enumerate(prefixes)}
        parent = np.array([position.get(p[:-1], -1) if p else -1 for p in prefixes])
    total = np.logaddexp(pb, pnb)
    return [(prefixes[i], float(total[i])) for i in np.argsort(-total, kind="stable") if np.isfinite(total[i])]


def nbest_counts(nbest: Sequence[tuple[str, float]], bucket, low: int = 2, high: int = 4) -> dict[int, float]:
    """Expected n-gram bucket counts (`phonetic.phoneme_ngrams`) under the n-best's posterior (its scores' softmax)."""
    if not nbest:
        return {}
    scores = np.array([score for _, score in nbest])
    weights = np.exp(scores - scores.max())
    weights /= weights.sum()
    grams: dict[str, float] = {}
    for (text, _), w in zip(nbest, weights):
        for gram in phoneme_ngrams(" ".join(text.split()), low, high):
            grams[gram] = grams.get(gram, 0.0) + float(w)
    counts: dict[int, float] = {}
    for gram, n in grams.items():
        key = bucket(gram)
        counts[key] = counts.get(key, 0.0) + n
    return counts


def _log_posteriors(logits: np.ndarray) -> np.ndarray:
    x = logits.astype(np.float64)
    x = x - x.max(axis=1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=1, keepdims=True))


class KBDecoder:
    """A knowledge base's phoneme model (`PhonemeLM`), and the query decoding that reads it.

    Build it from every passage's phonemes, or texts (`from_texts`); `KeywordReranker.from_texts(texts,
    decoding=DecodingSettings())` builds one from the phonemes it reads anyway, as `retrieve.keyword_reranker`
    does. Passages indexed after it was built are not in its model. An empty knowledge base leaves queries
    as they were.
    """

    def __init__(self, phonemes: Sequence[str], settings: DecodingSettings | None = None, symbols: str = PHONEMES,
                 speller: Speller | None = None):
        self.settings = settings or DecodingSettings()
        self.symbols = symbols
        self.lm = PhonemeLM(phonemes, self.settings.order, symbols) if len(phonemes) else None
        self.speller = speller  # the same knowledge base's words, to spell the decoded query with (`spelling`)

    def arrays(self) -> dict[str, np.ndarray]:
        """The phoneme model and speller as plain arrays (none for an empty knowledge base); `from_arrays` reads them back."""
        if self.lm is None:
            return {}
        return {**{f"lm.{name}": array for name, array in self.lm.arrays().items()},
                **({f"speller.{k}": v for k, v in self.speller.arrays().items()} if self.speller is not None else {})}

    @classmethod
    def from_arrays(cls, arrays: dict, settings: DecodingSettings | None = None, symbols: str = PHONEMES) -> KBDecoder:
        decoder = cls([], settings, symbols)
        if "lm.floor" in arrays:
            lm_arrays = {name[3:]: array for name, array in arrays.items() if name.startswith("lm.")}
            decoder.lm = PhonemeLM.from_arrays(lm_arrays, decoder.settings.order, symbols)
        if "speller.spellings" in arrays:
            decoder.speller = Speller.from_arrays({name[8:]: array for name, array in arrays.items() if name.startswith("speller.")})
        return decoder

    @classmethod
    def from_counts(cls, counts: NgramCounts, settings: DecodingSettings | None = None, speller: Speller | None = None) -> KBDecoder:
        """From the n-gram counts of every passage's phonemes, counted page by page (`settings.order` of them),
        and the speller of their words."""
        decoder = cls([], settings, counts.symbols, speller)
        decoder.lm = PhonemeLM.from_counts(counts) if counts.strings else None
        return decoder

    @classmethod
    def from_texts(cls, texts: Sequence[str], settings: DecodingSettings | None = None) -> KBDecoder:
        """From every passage's text (`SealIndex.all_texts()`): espeak-ng phonemizes about 1,500 paragraphs a second."""
        return cls([phonemize(t) for t in texts], settings, speller=Speller.from_texts(texts))

    def nbest(self, logits: np.ndarray) -> list[tuple[str, float]]:
        """The query's n-best phoneme strings under the recognizer and the knowledge base's model, best first."""
        s = self.settings
        found = prefix_beam_search(_log_posteriors(logits), len(self.symbols), self.lm, s.weight, s.bonus, s.beam, s.prune)
        return [("".join(self.symbols[i] for i in prefix), score) for prefix, score in found]

    def counts(self, logits: np.ndarray, phonetic, nbest: list[tuple[str, float]] | None = None) -> dict[int, float]:
        """The query's n-gram bucket counts: the n-best's expected counts, `mix` of them, and the
        phonetic half's (`PhoneticHalf`) own counts from the same logits. `nbest`: `self.nbest(logits)`, if made already."""
        vectorizer = phonetic.vectorizer
        own = phonetic.counts_from_logits([logits], phonetic.soft)[0]
        if self.lm is None or not len(logits):
            return dict(own)
        found = self.nbest(logits) if nbest is None else nbest
        decoded = nbest_counts(found, vectorizer.bucket, vectorizer.low, vectorizer.high)
        m = self.settings.mix
        return {k: m * decoded.get(k, 0.0) + (1 - m) * own.get(k, 0.0) for k in decoded.keys() | own.keys()}

    def phonetic_vector(self, logits: np.ndarray, phonetic, nbest: list[tuple[str, float]] | None = None) -> np.ndarray:
        """The query's phonetic half (unit norm) from its recognizer logits `(steps, classes)`."""
        return phonetic.vectorizer.count_vectors([self.counts(logits, phonetic, nbest)])[0]

    def spelled(self, nbest: list[tuple[str, float]]) -> list[str]:
        """The `SPELLED` best decodings spelled with the knowledge base's words, those with any word
        (none without a speller). Their text-tower vectors, averaged, are the query's semantic half."""
        if self.speller is None:
            return []
        return [text for text in (self.speller.spell(p) for p, _ in nbest[:SPELLED]) if text]

    def spells(self, model) -> bool:
        """Whether `query_vector` gives `model`'s queries a spelled semantic half (when any word is spelled)."""
        return bool(model.config.spelled_weight) and self.speller is not None and self.lm is not None

    def spelled_semantic(self, model, nbest: list[tuple[str, float]]) -> np.ndarray | None:
        """The `(1, dim)` unit semantic half the spelled decodings give (`spelled`), or None if none has a word."""
        spelled = self.spelled(nbest)
        if not spelled:
            return None
        texts, counts = np.unique(spelled, return_counts=True)  # decodings often spell alike: embed each once
        semantic = (model.text_semantic(list(texts)) * counts[:, None]).sum(axis=0, keepdims=True)
        return semantic / np.linalg.norm(semantic)

    def query_vector(self, model, vector: np.ndarray, logits: np.ndarray | None) -> np.ndarray:
        """A query's vector (`SpeechEmbedding.encode_clips`) decoded again from the same logits, through
        the knowledge base's model. For a model with `spelled_weight`, the semantic half is the text
        tower's vectors of the spelled decodings, averaged, weighed by it (`SpeechEmbedding.weighted`); else, or
        when nothing could be spelled, the vector's own semantic half is kept (none, if it was made
        without: `encode_clips(semantic=False)`). A model without a
        phonetic half (no logits), or an empty knowledge base, keeps the vector."""
        if model.phonetic is None or logits is None or self.lm is None:
            return vector
        nbest = self.nbest(logits) if len(logits) else []
        phonetic = self.phonetic_vector(logits, model.phonetic, nbest)[None]
        semantic = self.spelled_semantic(model, nbest) if self.spells(model) else None
        if semantic is not None:
            return model.weighted(semantic, phonetic, model.config.spelled_weight)[0]
        semantic, _ = model.split(vector[None])  # zeros if the caller left the speech tower's half out
        return model.weighted(semantic, phonetic, model.config.phonetic_weight)[0]

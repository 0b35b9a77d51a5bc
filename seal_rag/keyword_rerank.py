"""Keyword spotting: re-rank the speech tower's top passages by which of their own words the query says.

The phonetic half compares bags of phoneme n-grams, so a word the recognizer half-hears counts
only through the n-grams it got right. Here the knowledge base's words are the vocabulary (no
language model, no training): for each candidate passage, each of its words (espeak-ng's phonemes,
as the passages' n-grams) is aligned, CTC-style, to the best window of the query's recognizer
posteriors, and its cost is how far that alignment falls below the recognizer's own best path.
A passage's evidence is the IDF-weighted sum of how well its words are found; it is added to the
cosine of the passages the vector search returned.

    >>> reranker = KeywordReranker.from_texts(index.all_texts())  # once per knowledge base
    >>> hits = reranker.rerank(model.phonetic.logits(states)[0], index.query(vector, 30))[:5]

On validation (issue 32; `training/experiments/kb_scoring.py`, 400 questions against 1,551
paragraphs) it raised the speech tower's Top-1 on a voice family training never heard (piper)
from 0.575 to 0.675 clean and from 0.570 to 0.660 with noise, and on the training families'
validation voices from 0.510 to 0.598 and 0.477 to 0.547, for about 5 ms of CPU a question.
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from .kb_decoding import DecodingSettings, KBDecoder, NgramCounts
from .phonetic import PHONEMES, phonemize
from .spelling import Speller, words_of
from .store import Hit


@dataclass(frozen=True)
class KeywordSettings:
    """How keyword evidence is read and mixed in (chosen on validation, issue 32).

    depth: passages re-ranked (the vector search's top `depth`).
    tolerance: a word's mean per-phoneme cost (nats below the recognizer's best path) at which it
        counts as absent; found words count 1 - cost / tolerance.
    length_power: a passage's evidence is divided by its number of distinct words to this power,
        so a long passage does not win by holding more words.
    weight: evidence (scaled so the best candidate's is 1) added to the cosine.
    min_length, max_length: words of fewer or more phonemes are not spotted (short ones are
        found everywhere; espeak-ng's longest "words" are spelled-out numbers and symbols).
    """

    depth: int = 30
    tolerance: float = 3.0
    length_power: float = 0.5
    weight: float = 0.1
    min_length: int = 3
    max_length: int = 16


def log_posteriors(logits: np.ndarray) -> np.ndarray:
    x = logits.astype(np.float32)
    x = x - x.max(axis=1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=1, keepdims=True))


WIDTHS = (6, 9)  # words are aligned in groups of these lengths or less, and longer: padding costs time


def spot(log_probs: np.ndarray, words: Sequence[Sequence[int]], blank: int) -> np.ndarray:
    """Each word's cost at its best window of the clip: the least, over windows and CTC alignments
    of the word's phonemes to them, of the summed per-step deficit (the step's best log posterior
    minus the path's). 0: the recognizer's best path says the word exactly, somewhere.

    Args:
        log_probs: `(steps, classes)` log posteriors of one clip.
        words: each word's class indices.
        blank: CTC's blank class.
    """
    lengths = np.array([len(w) for w in words])
    out = np.zeros(len(words), np.float32)
    low = 0
    for high in (*WIDTHS, max(lengths.max(initial=0), WIDTHS[-1] + 1)):
        chosen = np.flatnonzero((lengths > low) & (lengths <= high))
        if len(chosen):
            labels = np.full((high, len(chosen)), -1, np.int64)  # right-aligned: -1 pads the front
            for column, i in enumerate(chosen):
                labels[high - lengths[i]:, column] = words[i]
            out[chosen] = _spot(log_probs, labels, blank)
        low = high
    return out


def _spot(log_probs: np.ndarray, labels: np.ndarray, blank: int) -> np.ndarray:
    """`spot` for `(width, words)` labels, each word right-aligned and left-padded with -1 (a
    padded state costs nothing, which is what lets a word start at any step)."""
    deficit = log_probs.max(axis=1, keepdims=True) - log_probs
    deficit = np.concatenate([deficit, np.zeros((len(deficit), 1), deficit.dtype)], axis=1)  # class -1: free
    enter = deficit[:, labels]  # (steps, width, words): moving onto a phoneme at this step
    stay = np.minimum(enter, deficit[:, blank][:, None, None])  # holding it, or a blank after it
    width, count = labels.shape
    cost = np.full((width + 1, count), np.inf, deficit.dtype)  # state j: the word's first j labels are said
    cost[0] = 0
    cost[1:][labels < 0] = 0
    best = np.full(count, np.inf, deficit.dtype)
    moved = np.empty((width, count), deficit.dtype)
    for t in range(len(deficit)):
        np.add(cost[:-1], enter[t], out=moved)
        np.add(cost[1:], stay[t], out=cost[1:])
        np.minimum(cost[1:], moved, out=cost[1:])
        np.minimum(best, cost[-1], out=best)
    return best


def _key(text: str) -> bytes:
    """A passage's key in the tables: a digest, so that they do not hold every passage's text
    (about a gigabyte at a million chunks)."""
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


class PassageWords:
    """Each passage's word ids by its `_key`, in flat arrays sorted by key: at a million
    passages a dict of small arrays would cost twice the memory and cannot be kept on disk as is."""

    def __init__(self, high: np.ndarray, low: np.ndarray, starts: np.ndarray, ids: np.ndarray):
        # The key's two halves as uint64, sorted by (high, low); passage i's ids are ids[starts[i]:starts[i + 1]].
        self.high, self.low, self.starts, self.ids = high, low, starts, ids

    @classmethod
    def build(cls, keys: bytes, lengths: np.ndarray, ids: np.ndarray) -> PassageWords:
        """From each passage's 16-byte key (joined), its number of word ids, and all ids end to end."""
        pairs = np.frombuffer(keys, np.uint64).reshape(-1, 2)
        order = np.lexsort((pairs[:, 1], pairs[:, 0]))
        old_starts = np.cumsum(lengths) - lengths
        lengths = lengths[order]
        starts = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        # Each passage's ids moved, in one gather, from where they were to their passage's new place.
        gather = np.repeat(old_starts[order] - starts[:-1], lengths)
        gather += np.arange(starts[-1])
        return cls(pairs[order, 0].copy(), pairs[order, 1].copy(), starts, ids[gather].astype(np.int32, copy=False))

    def arrays(self) -> dict[str, np.ndarray]:
        return {"high": self.high, "low": self.low, "starts": self.starts, "ids": self.ids}

    def check(self, words: int) -> None:
        """ValueError unless these are consistent tables of word ids below `words` (as read from disk)."""
        high, low, starts, ids = self.high, self.low, self.starts, self.ids
        ok = (high.dtype == low.dtype == np.uint64 and starts.dtype == np.int64 and ids.dtype == np.int32
              and high.ndim == low.ndim == starts.ndim == ids.ndim == 1 and len(low) == len(high) and len(starts) == len(high) + 1
              and starts[0] == 0 and starts[-1] == len(ids) and bool((np.diff(starts) >= 0).all())
              and (not len(ids) or (ids.min() >= 0 and ids.max() < words))
              and bool(((high[1:] > high[:-1]) | ((high[1:] == high[:-1]) & (low[1:] >= low[:-1]))).all()))
        if not ok:
            raise ValueError("inconsistent passage word tables")

    def get(self, key: bytes) -> np.ndarray | None:
        """The word ids stored for `key`, or None."""
        high, low = np.frombuffer(key, np.uint64)
        for i in range(int(np.searchsorted(self.high, high)), len(self.high)):
            if self.high[i] != high:
                break
            if self.low[i] == low:
                return self.ids[self.starts[i] : self.starts[i + 1]]
        return None


class KeywordReranker:
    """A knowledge base's words as phonemes, with their IDF over its passages; re-ranks hits by them.

    Build it from every passage's text (`from_texts`): IDF needs the whole knowledge base. A hit
    whose text it has not seen (the index grew since) is phonemized when it comes, its words rare.
    """

    def __init__(self, settings: KeywordSettings | None = None, symbols: str = PHONEMES, decoder: KBDecoder | None = None):
        """Empty tables: build them with `from_pages` or `from_texts`, or read them with `from_arrays`."""
        self.settings = settings or KeywordSettings()
        self.decoder = decoder  # the same knowledge base's phoneme model, to decode the query with before searching
        self.symbols, self.blank = symbols, len(symbols)
        self._index = {c: i for i, c in enumerate(symbols)}
        self._words: dict[str, int] = {}
        self._labels: list[list[int]] = []
        self._lock = threading.Lock()
        self.idf, self.passages = np.zeros(0, np.float32), 1
        self._stored = PassageWords.build(b"", np.zeros(0, np.int64), np.zeros(0, np.int32))
        self._by_text: dict[bytes, np.ndarray] = {}  # passages met after the tables were built

    @classmethod
    def from_pages(cls, pages: Iterable[tuple[Sequence[str], Sequence[str | None]]], settings: KeywordSettings | None = None,
                   decoding: DecodingSettings | None = None, symbols: str = PHONEMES) -> KeywordReranker:
        """From every passage, a page of `(texts, phonemes)` at a time (phonemes None where not
        stored: espeak-ng phonemizes about 1,500 paragraphs a second). Memory holds the tables, not
        the text: a million chunks' texts and phonemes are gigabytes as Python strings.

        With `decoding`, it also carries the knowledge base's phoneme model and speller (`kb_decoding.KBDecoder`,
        from the same phonemes and texts) as `decoder`: `retrieve.Retriever` then decodes the query's phonetic
        half, and spells its semantic half, with it before the vector search."""
        reranker = cls(settings, symbols)
        counts = NgramCounts(decoding.order, symbols) if decoding is not None else None
        vocabulary: Counter = Counter()  # every passage's words, for the decoder's speller
        keys, lengths, ids = [], [], []
        for texts, phonemes in pages:
            phonemes = [p if p is not None else phonemize(t) for t, p in zip(texts, phonemes)]
            words = [reranker._word_ids(p) for p in phonemes]
            keys.append(b"".join(_key(t) for t in texts))
            lengths.append(np.array([len(w) for w in words], np.int64))
            ids.append(np.concatenate(words + [np.zeros(0, np.int32)]))
            if counts is not None:
                counts.add(phonemes)
                for text in texts:
                    vocabulary.update(words_of(text))
        lengths = np.concatenate(lengths + [np.zeros(0, np.int64)])
        ids = np.concatenate(ids + [np.zeros(0, np.int32)])
        df = np.bincount(ids, minlength=len(reranker._words))
        reranker.passages = max(len(lengths), 1)
        reranker.idf = np.log(reranker.passages / np.maximum(df, 1)).astype(np.float32)
        reranker._stored = PassageWords.build(b"".join(keys), lengths, ids)
        if counts is not None:
            reranker.decoder = KBDecoder.from_counts(counts, decoding, Speller.from_counts(vocabulary))
        return reranker

    def arrays(self) -> dict[str, np.ndarray]:
        """The tables as plain arrays, with the phoneme model's if it has one (`from_arrays` reads them back)."""
        words = "\n".join(self._words).encode()  # in id order; a word is phoneme symbols, never a newline
        return {"words": np.frombuffer(words, np.uint8), "idf": self.idf, "passages": np.array(self.passages),
                **{f"passage_{part}": array for part, array in self._stored.arrays().items()},
                **({f"decoder.{k}": v for k, v in self.decoder.arrays().items()} if self.decoder is not None else {})}

    @classmethod
    def from_arrays(cls, arrays: dict, settings: KeywordSettings | None = None, decoding: DecodingSettings | None = None,
                    symbols: str = PHONEMES) -> KeywordReranker:
        """The tables `arrays()` gave, with a phoneme model when `decoding` is given (KeyError where an array is missing)."""
        decoder = None
        if decoding is not None:
            decoder = KBDecoder.from_arrays({k[8:]: v for k, v in arrays.items() if k.startswith("decoder.")}, decoding, symbols)
        reranker = cls(settings, symbols, decoder)
        words = bytes(arrays["words"]).decode()
        reranker._words = {w: i for i, w in enumerate(words.split("\n"))} if words else {}
        reranker._labels = [[reranker._index[c] for c in w] for w in reranker._words]
        reranker.idf, reranker.passages = np.asarray(arrays["idf"], np.float32), int(arrays["passages"])
        reranker._stored = PassageWords(*(np.asarray(arrays[f"passage_{part}"]) for part in ("high", "low", "starts", "ids")))
        if len(reranker.idf) != len(reranker._words) or reranker.passages < 1:
            raise ValueError(f"{len(reranker._words)} words but {len(reranker.idf)} IDF values, {reranker.passages} passages")
        reranker._stored.check(len(reranker._words))
        return reranker

    @classmethod
    def from_texts(cls, texts: Sequence[str], settings: KeywordSettings | None = None,
                   decoding: DecodingSettings | None = None, phonemes: Sequence[str | None] | None = None) -> KeywordReranker:
        """From every passage's text (`SealIndex.all_texts()`), and its phonemes where known: `from_pages` in one page."""
        return cls.from_pages([(texts, phonemes or [None] * len(texts))], settings, decoding)

    def _word_ids(self, phonemes: str) -> np.ndarray:
        s = self.settings
        ids = set()
        for word in phonemes.split():
            if s.min_length <= len(word) <= s.max_length:
                if word not in self._words:
                    self._words[word] = len(self._words)
                    self._labels.append([self._index[c] for c in word])
                ids.add(self._words[word])
        return np.array(sorted(ids), np.int32)

    def words_of(self, text: str) -> np.ndarray:
        """Ids of a passage's distinct words (espeak-ng's phonemes), phonemized once."""
        key = _key(text)
        stored = self._stored.get(key)
        if stored is not None:
            return stored
        with self._lock:
            if key not in self._by_text:
                known = len(self._words)
                self._by_text[key] = self._word_ids(phonemize(text))
                if len(self._words) > known:  # words the knowledge base did not hold: as rare as a word can be
                    self.idf = np.concatenate([self.idf, np.full(len(self._words) - known, math.log(self.passages + 1), np.float32)])
            return self._by_text[key]

    def word_costs(self, logits: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """Each word's (`words_of` ids) mean cost per phoneme at its best window of the query (`spot`)."""
        if not len(ids) or not len(logits):
            return np.full(len(ids), np.inf, np.float32)
        labels = [self._labels[i] for i in ids]
        return spot(log_posteriors(logits), labels, self.blank) / np.array([len(w) for w in labels])

    def evidence(self, logits: np.ndarray, texts: Sequence[str]) -> np.ndarray:
        """How strongly the query's recognizer logits `(steps, classes)` say each passage's words:
        the IDF-weighted sum of 1 - cost / tolerance over its found words, over its word count ** length_power."""
        s = self.settings
        passage_words = [self.words_of(t) for t in texts]
        ids = np.unique(np.concatenate(passage_words + [np.zeros(0, np.int64)]))
        idf = self.idf  # one table for this query (another thread's new passage may grow it meanwhile)
        found = np.zeros(len(idf), np.float32)
        found[ids] = np.maximum(0.0, 1.0 - self.word_costs(logits, ids) / s.tolerance)
        weighted = found * idf
        return np.array([weighted[w].sum() / max(len(w), 1) ** s.length_power for w in passage_words], np.float32)

    def rerank(self, logits: np.ndarray, hits: Sequence[Hit]) -> list[Hit]:
        """Hits in order of cosine + weight * evidence (scaled so the best hit's is 1); the first
        `depth` are re-ranked, any beyond keep their place after them. Each hit keeps its cosine
        as `score`; its scaled evidence is in `metadata["keyword_score"]`."""
        s = self.settings
        head, tail = list(hits[: s.depth]), list(hits[s.depth :])
        if not head:
            return list(hits)
        evidence = self.evidence(logits, [h.text or "" for h in head])
        evidence = evidence / max(float(evidence.max()), 1e-9)
        order = sorted(range(len(head)), key=lambda i: -(head[i].score + s.weight * evidence[i]))
        ranked = [replace(head[i], metadata={**head[i].metadata, "keyword_score": round(float(evidence[i]), 4)}) for i in order]
        return [replace(h, rank=rank) for rank, h in enumerate(ranked + tail, 1)]

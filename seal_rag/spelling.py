"""Spell a recognized phoneme string with a knowledge base's own words, so the text tower can read it.

The speech tower's own semantic half (a head trained on a few hundred hours of synthetic speech)
knows few words; MiniLM knows them all, but reads text. A query's phonemes, decoded with the
knowledge base's phoneme model (`kb_decoding`), mostly spell out words the knowledge base holds.
So each recognized word is looked up among the pronunciations (espeak-ng's, the same rules as
the passages' phonemes) of every word in the knowledge base and of common question words
(`common_words.txt`): an exact pronunciation gives its most frequent spelling, any other word
the spelling of the pronunciation nearest in phoneme 1- to 3-grams (cosine), or nothing below
`MIN_SIMILARITY`. The text tower's vector of the spelled question is then the query's semantic half
(`KBDecoder.query_vector`). No training, and nothing learned from any voice.

On validation (issue 32; 400 questions, 1,551 paragraphs, piper voices, which no training heard),
the 5 best decodings spelled and their vectors averaged (`KBDecoder.spelled_semantic`) rank the
gold passage first for 0.512 / 0.492 of questions alone (clean / noisy), against 0.163 / 0.158
for the speech tower's semantic half; as served, 0.733 / 0.710 against 0.695 / 0.690, and 0.703 /
0.693 for the cascade through the same text tower (`training/experiments/spelled_semantic.py`).
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from functools import lru_cache
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from scipy import sparse

from .phonetic import phonemize_words

COMMON_WORDS = Path(__file__).with_name("common_words.txt")
WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)?")  # letters and digits, with an inner apostrophe (don't, Newton's)
MIN_SIMILARITY = 0.5  # below it a recognized word is left out: a wrong word moves the vector more than a missing one
LARGE = 1_000_000_000  # the count given to common words: they are spelled as themselves
# The most frequent words kept: a million chunks hold millions of distinct strings (codes, numbers,
# typos), each costing the tables and every fuzzy lookup; a knowledge base of 20,000 chunks has about 60,000.
MAX_WORDS = 200_000
LOOKUPS_KEPT = 50_000  # recognized words whose spelling is remembered (the 5-best repeat most of them)


def tables_stamp() -> dict:
    """What a speller built now depends on besides the knowledge base (`keyword_tables` keeps tables only while it holds)."""
    return {"max_words": MAX_WORDS, "common_words": hashlib.sha256(COMMON_WORDS.read_bytes()).hexdigest()[:16]}


def words_of(text: str) -> list[str]:
    return [w.lower() for w in WORD.findall(text)]


def common_words() -> list[str]:
    return [line for line in COMMON_WORDS.read_text(encoding="utf-8").splitlines() if line and not line.startswith("#")]


def _grams(pronunciation: str) -> list[str]:
    padded = f" {pronunciation} "
    return [padded[i : i + n] for n in (1, 2, 3) for i in range(len(padded) - n + 1)]


class Speller:
    """Pronunciations -> spellings of a knowledge base's words (`from_texts` or `from_counts`).

    Arrays in and out (`arrays`, `from_arrays`) so `keyword_tables` keeps it beside the index.
    """

    def __init__(self, pronunciations: Sequence[str], spellings: Sequence[str]):
        self.pronunciations, self.spellings = list(pronunciations), list(spellings)
        self._exact = {p: i for i, p in enumerate(self.pronunciations)}
        vocabulary: dict[str, int] = {}
        rows, columns = [], []
        for i, pronunciation in enumerate(self.pronunciations):
            for gram in _grams(pronunciation):
                rows.append(i)
                columns.append(vocabulary.setdefault(gram, len(vocabulary)))
        counts = sparse.csr_matrix((np.ones(len(rows), np.float32), (rows, columns)),
                                   shape=(len(self.pronunciations), len(vocabulary)))
        counts.sum_duplicates()
        self._vocabulary = vocabulary
        self._norms = np.sqrt(np.asarray(counts.multiply(counts).sum(axis=1), np.float32).ravel())
        self._by_gram = counts.T.tocsr()  # gram -> the pronunciations holding it, with its count in each
        self.word = lru_cache(maxsize=LOOKUPS_KEPT)(self._word)  # thread-safe; one per speller

    @classmethod
    def from_counts(cls, counts: Counter) -> Speller:
        """From word counts (`words_of` each passage), with the common words added; the `MAX_WORDS` most frequent kept."""
        counts = Counter(counts)
        for word in common_words():
            counts[word] += LARGE
        words = sorted(counts, key=lambda w: (-counts[w], w))[:MAX_WORDS]
        best: dict[str, str] = {}  # pronunciation -> its most frequent spelling (words come most frequent first)
        for word, pronunciation in zip(words, phonemize_words(words)):
            if pronunciation:
                best.setdefault(pronunciation, word)
        return cls(list(best), list(best.values()))

    @classmethod
    def from_texts(cls, texts: Iterable[str]) -> Speller:
        counts: Counter = Counter()
        for text in texts:
            counts.update(words_of(text))
        return cls.from_counts(counts)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"pronunciations": np.frombuffer("\n".join(self.pronunciations).encode(), np.uint8),
                "spellings": np.frombuffer("\n".join(self.spellings).encode(), np.uint8)}

    @classmethod
    def from_arrays(cls, arrays: dict) -> Speller:
        """What `arrays()` gave (ValueError if they do not pair up)."""
        pronunciations = bytes(arrays["pronunciations"]).decode().split("\n")
        spellings = bytes(arrays["spellings"]).decode().split("\n")
        if len(pronunciations) != len(spellings):
            raise ValueError(f"{len(pronunciations)} pronunciations but {len(spellings)} spellings")
        return cls(pronunciations, spellings)

    def _word(self, pronunciation: str) -> str | None:
        """One recognized word's spelling, or None if no known word is near enough (`word`, remembered)."""
        found = self._exact.get(pronunciation)
        if found is not None:
            return self.spellings[found]
        grams = Counter(g for g in _grams(pronunciation) if g in self._vocabulary)
        if not grams:
            return None
        columns = np.array([self._vocabulary[g] for g in grams])
        weights = np.array(list(grams.values()), np.float32)
        overlap = np.asarray(self._by_gram[columns].T @ weights).ravel()
        query_norm = np.sqrt(sum(c * c for c in Counter(_grams(pronunciation)).values()))
        similarity = overlap / (self._norms * query_norm + 1e-9)
        best = int(np.argmax(similarity))
        return self.spellings[best] if similarity[best] >= MIN_SIMILARITY else None

    def spell(self, phonemes: str) -> str:
        """A recognized phoneme string (words separated by spaces, `PHONEMES` symbols) -> words."""
        return " ".join(s for s in map(self.word, phonemes.split()) if s)


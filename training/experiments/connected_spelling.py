"""Issue 32: spell recognized words as they sound in connected speech, on validation only.

The recognizer learned espeak-ng's phonemes of whole sentences, where "to" is "tə", "a" is "ɐ",
"of the" is one word "ʌvðə" and "number" before a vowel is "nʌmbɚɹ"; the speller
(`seal_rag.spelling`) knows each word's pronunciation alone, so such words fall to its fuzzy match
("tə" became "toshiba"). Four changes to the speller, each alone and all together:

- forms: the connected forms of common words, found by aligning espeak-ng's phonemes of training
  questions (SQuAD's training articles, MedQuAD) with their words' own pronunciations;
- split: a word that is two or three known pronunciations run together is spelled as those words;
- linking-r: a word that is a known pronunciation plus a final "ɹ" is that word;
- short exact: a word of one or two phonemes is spelled only if it is a pronunciation exactly.

Scored as `spelled_semantic.py` scores: the validation questions spoken by piper (the validation
family) against the 1,551 validation paragraphs, through the encodings `training.unseen_voices`
cached; the spelled semantic half alone and as served (weight `spelled_weight`, KB decoding,
keyword re-ranking).

    python -m training.unseen_voices --split val --families piper --no-cascade --prepare
    python -m training.experiments.connected_spelling
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import torch

from seal_rag import spelling
from seal_rag.bench.served import keyword_scores
from seal_rag.phonetic import phonemize, phonemize_words

from .. import text_sources as ts
from ..config import run_command
from ..phonetic import edit_distance
from .spelled_semantic import piper_validation

SKIP = 4.0  # cost of leaving a word or a phoneme word unaligned
JOIN = 0.5  # cost of each word or phoneme word joined to another


def align(tokens: list[str], words: list[str], alone: list[str]) -> list[tuple[str, str, str, float]]:
    """Pair espeak-ng's phoneme words of a sentence with its words: one to one, two or three words
    to one phoneme word, one word to two; cost the edit distance. -> (phonemes, words, alone, cost)."""
    n, m = len(words), len(tokens)
    cost = np.full((n + 1, m + 1), np.inf)
    cost[0, 0] = 0.0
    back: dict[tuple[int, int], tuple[int, int, float]] = {}
    for i in range(n + 1):
        for j in range(m + 1):
            if not np.isfinite(cost[i, j]):
                continue
            for di, dj in ((1, 1), (2, 1), (3, 1), (1, 2), (1, 0), (0, 1)):
                if i + di > n or j + dj > m:
                    continue
                step = SKIP if not (di and dj) else (
                    edit_distance("".join(tokens[j : j + dj]), "".join(alone[i : i + di])) + JOIN * (di + dj - 2))
                if cost[i, j] + step < cost[i + di, j + dj]:
                    cost[i + di, j + dj] = cost[i, j] + step
                    back[(i + di, j + dj)] = (i, j, step)
    pairs, i, j = [], n, m
    while (i, j) != (0, 0):
        pi, pj, step = back[(i, j)]
        if i > pi and j - pj == 1:
            pairs.append((tokens[pj], " ".join(words[pi:i]), "".join(alone[pi:i]), step))
        i, j = pi, pj
    return pairs[::-1]


def connected_forms(texts: list[str], min_count: int = 3, min_share: float = 0.2) -> dict[str, str]:
    """Phoneme words -> the common words they are in connected speech, seen `min_count` times and in
    at least `min_share` of the words' occurrences."""
    vocabulary = sorted({w for t in texts for w in spelling.words_of(t)})
    alone = dict(zip(vocabulary, phonemize_words(vocabulary)))
    common = set(spelling.common_words())
    pairs: Counter = Counter()
    seen: Counter = Counter()
    for text in texts:
        words = spelling.words_of(text)
        for token, spelled, own, step in align(phonemize(text).split(), words, [alone[w] for w in words]):
            seen[spelled] += 1
            if (token != own or " " in spelled) and step <= max(2, len(own) / 2) and token != own + "ɹ":
                pairs[(token, spelled)] += 1
    forms: dict[str, str] = {}
    for (token, spelled), count in pairs.most_common():
        if count >= min_count and count >= min_share * seen[spelled] and all(w in common for w in spelled.split()):
            forms.setdefault(token, spelled)
    return forms


class ConnectedSpeller(spelling.Speller):
    """`Speller` with the changes named in `changes` (forms, split, linking-r, short exact)."""

    def __init__(self, pronunciations, spellings, forms: dict[str, str], changes: set[str]):
        super().__init__(pronunciations, spellings)
        self.forms, self.changes = forms, changes

    def _word(self, pronunciation: str) -> str | None:
        if "forms" in self.changes and pronunciation in self.forms:
            return self.forms[pronunciation]
        found = self._exact.get(pronunciation)
        if found is not None:
            return self.spellings[found]
        if "linking-r" in self.changes and pronunciation.endswith("ɹ") and pronunciation[:-1] in self._exact:
            return self.spellings[self._exact[pronunciation[:-1]]]
        if "split" in self.changes and (parts := self._split(pronunciation)):
            return " ".join(self.spellings[self._exact[p]] for p in parts)
        if "short exact" in self.changes and len(pronunciation) <= 2:
            return None
        return super()._word(pronunciation)

    def _split(self, p: str) -> list[str] | None:
        """Two, else three, known pronunciations of at least two phonemes each that make `p`."""
        known = self._exact
        for i in range(2, len(p) - 1):
            if p[:i] in known and p[i:] in known:
                return [p[:i], p[i:]]
        for i in range(2, len(p) - 3):
            for j in range(i + 2, len(p) - 1):
                if p[:i] in known and p[i:j] in known and p[j:] in known:
                    return [p[:i], p[i:j], p[j:]]
        return None


def main(argv: list[str] | None = None) -> None:
    v, args = piper_validation(__doc__.splitlines()[0], argv)
    ts.use_data(args.data)
    texts = [u.text for u in ts.squad_questions(ts.squad_articles("train")) + ts.medquad_questions()]
    forms = connected_forms(texts)
    print(f"{len(forms)} connected forms of common words from {len(texts)} training questions, for example "
          + ", ".join(f"{p} = {s}" for p, s in list(forms.items())[:8]))
    model, decoder, passages = v.model, v.reranker.decoder, v.passages
    w, w0 = model.config.spelled_weight, model.config.phonetic_weight
    norm = np.sqrt((1 - w) ** 2 / (1 - w0) + w**2 / w0)  # as spelled_semantic.py: the index's weighing of a unit query

    variants = {"speller as shipped": set(), "forms": {"forms"}, "split": {"split"}, "linking-r": {"linking-r"},
                "short exact": {"short exact"}, "all four": {"forms", "split", "linking-r", "short exact"}}
    for condition in v.runner.conditions:
        _, logits, _ = v.runner.loaded(condition)
        nbests = [decoder.nbest(x) if len(x) else [] for x in logits]
        phonetic = np.stack([decoder.phonetic_vector(x, model.phonetic, n) for x, n in zip(logits, nbests)]) @ passages["phonetic"].T
        print(f"\nvalidation, piper, {condition}: Top-1 / MRR@10\n| speller | spelled half alone | as served |\n|---|---|---|")
        for name, changes in variants.items():
            speller = ConnectedSpeller(decoder.speller.pronunciations, decoder.speller.spellings, forms, changes)
            vectors = []
            for nbest in nbests:  # the 5 best decodings spelled, their vectors averaged, as served
                vector = model.text_semantic([t for t in (speller.spell(p) for p, _ in nbest[:5]) if t] or [" "]).mean(axis=0)
                vectors.append(vector / np.linalg.norm(vector))
            cosines = np.stack(vectors) @ passages["semantic"].T
            served = keyword_scores(v.reranker, ((1 - w) * cosines + w * phonetic) / norm, logits, v.chosen.passages)
            print(f"| {name} | {v.figures(cosines)} | {v.figures(served)} |", flush=True)


if __name__ == "__main__":
    with torch.no_grad():
        run_command(main)

"""Sentences a person might say, cut from passages: what `adapt` speaks, and training too.

The inverse cloze task pairs a spoken sentence with the rest of its passage
(`context_without`). `training/` imports these, so adapting and training cut text the same way.
"""

from __future__ import annotations

import re

MIN_WORDS, MAX_WORDS = 4, 30  # a spoken query is a few words to a long sentence (~10 s)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])")


def split_sentences(text: str) -> list[str]:
    """A plain rule-based splitter: good enough for Wikipedia, NIH pages and man pages."""
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


def speakable(sentence: str) -> bool:
    """A sentence a person might say: MIN..MAX words, mostly letters, no code or URLs."""
    words = sentence.split()
    if not MIN_WORDS <= len(words) <= MAX_WORDS:
        return False
    letters = sum(c.isalpha() for c in sentence)
    if letters < 0.7 * len(sentence.replace(" ", "")):
        return False
    return not re.search(r"https?:|www\.|[{}<>|\\=_@#$]|\.\w+\(|--|/\w+/", sentence)


def context_without(passage_text: str, sentence_index: int) -> str:
    """The inverse cloze task's positive: the paragraph with the spoken sentence removed."""
    sentences = split_sentences(passage_text)
    return " ".join(s for i, s in enumerate(sentences) if i != sentence_index)

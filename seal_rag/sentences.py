"""The one sentence splitter: chunking, the extractive answer, `adapt` and training all cut here.

The inverse cloze task pairs a spoken sentence with the rest of its passage
(`context_without`). `training/` imports these, so adapting and training cut text the same way.

A sentence ends at . ! ? (and any closing quotes or brackets) before white space, and at
every paragraph break, unless what follows starts in lower case, or the period closes an
initial ("John F. Kennedy"), a dotted abbreviation ("U.S.", "e.g.") or a common
abbreviation ("Dr.", "St.", "No. 5"). Plain rules: good enough for Wikipedia, NIH pages and
man pages, with no model to load.
"""

from __future__ import annotations

import re

MIN_WORDS, MAX_WORDS = 4, 30  # a spoken query is a few words to a long sentence (~10 s)
# A candidate end: the stop, closing quotes or brackets, then the white space after them. It starts
# only where a run of stops starts: else a long run of dots not followed by white space
# ("Contents.......1") is tried from each of its dots, in time that grows with the square of its length.
_CANDIDATE = re.compile(r"(?<![.!?…])[.!?…]+[\"'”’)\]]*(\s+)")
_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
_OPENERS = "\"'“‘([¿¡"
_DOTTED = re.compile(r"(?:[^\W\d_]\.)+[^\W\d_]")  # "U.S", "e.g", "a.m" before the final period
# Abbreviations that never end a sentence (titles, "St.", "vs.") ...
_TITLES = frozenset(
    "mr mrs ms messrs mme dr prof sr jr st mt ft gen col lt sgt capt cmdr adm gov sen rep rev hon pres supt "
    "vs cf al approx dept univ bros inc ltd co corp".split()
)
# ... and those that do not before a number ("No. 5", "Fig. 3", "Jan. 1883").
_BEFORE_NUMBERS = frozenset("no nos vol vols fig figs p pp ch sec art jan feb mar apr jun jul aug sep sept oct nov dec".split())


def paragraph_spans(text: str) -> list[tuple[int, int]]:
    """`(start, end)` of each paragraph: the text between blank lines."""
    starts = [0] + [m.end() for m in _PARAGRAPH_BREAK.finditer(text)]
    ends = [m.start() for m in _PARAGRAPH_BREAK.finditer(text)] + [len(text)]
    return list(zip(starts, ends))


def sentence_spans(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """`(start, end)` of each sentence of one paragraph `text[start:end]`, white space trimmed."""
    end = len(text) if end is None else end
    spans, cursor = [], start
    for match in _CANDIDATE.finditer(text, start, end):
        if _ends_sentence(text, match, start, end):
            spans.append((cursor, match.start(1)))
            cursor = match.end()
    spans.append((cursor, end))
    return [trimmed for span in spans if (trimmed := _trim(text, *span))]


def split_sentences(text: str) -> list[str]:
    """The sentences of `text`, paragraph by paragraph."""
    return [text[s:e] for p_start, p_end in paragraph_spans(text) for s, e in sentence_spans(text, p_start, p_end)]


def _ends_sentence(text: str, match: re.Match, start: int, end: int) -> bool:
    # What follows, up to its first letter: a bounded slice, since copying the rest of the
    # paragraph for each candidate would cost the square of a long paragraph's length.
    following = text[match.end() : min(end, match.end() + 64)].lstrip(_OPENERS)
    if following[:1].islower():
        return False  # "e.g. the", "approx. three": a sentence does not start in lower case
    if match.group().rstrip()[0] != "." or match.group().startswith(".."):
        return True  # ! ? and ellipses end sentences
    word_start = match.start()
    while word_start > start and not text[word_start - 1].isspace():
        word_start -= 1
    word = text[word_start : match.start()].lstrip(_OPENERS)
    if len(word) == 1 and word.isupper():
        return False  # an initial: "John F. Kennedy"
    if _DOTTED.fullmatch(word):
        return False  # "U.S. Army", "e.g. Paris"
    key = word.lower()
    return key not in _TITLES and not (key in _BEFORE_NUMBERS and following[:1].isdigit())


def _trim(text: str, start: int, end: int) -> tuple[int, int] | None:
    piece = text[start:end]
    if not piece.strip():
        return None
    lead = len(piece) - len(piece.lstrip())
    return start + lead, start + len(piece.rstrip())


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

"""English text to speak: SQuAD training articles, MedQuAD, prose and WordNet installed by Debian.

Only sets the data README allows for training are read: SQuAD's `train_articles` (minus our
own validation articles, `VAL_ARTICLES`) and MedQuAD. PubMedQA, COVID-QA, SQuAD's
`holdout_articles` and the speech sets are never opened here.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from seal_rag.sentences import speakable, split_sentences

from seal_rag.bench.data import data_path, data_root

_data_override: Path | None = None


def use_data(folder: Path | None) -> None:
    """Read training text from `folder` (a command's `--data`) instead of `$SEAL_RAG_DATA`."""
    global _data_override
    _data_override = folder


def _squad(name: str) -> Path:
    return data_path(data_root(_data_override), "qa", "squad-v1.1-dev", name)


def _medquad(name: str) -> Path:
    return data_path(data_root(_data_override), "qa", "medquad", name)

# Four of SQuAD's 38 training articles, kept out of all training text: our validation split.
# Varied on purpose: chemistry, history, networking, education.
VAL_ARTICLES = ["Oxygen", "Genghis Khan", "Packet switching", "Private school"]


@dataclass
class Passage:
    passage_id: str
    text: str
    source: str  # "squad" or "medquad"


@dataclass
class Utterance:
    """One thing to speak. `passage_id` is the gold passage of a question, or the paragraph a
    sentence was cut from (`sentence_index` >= 0: the inverse cloze task removes it)."""

    text: str
    kind: str  # squad_question, squad_sentence, medquad_question, medquad_sentence, prose, wordnet
    passage_id: str = ""
    sentence_index: int = -1
    extra: dict = field(default_factory=dict)


def _jsonl(path: Path) -> list[dict]:
    with path.open() as f:
        return [json.loads(line) for line in f]


def _squad_title(passage_id: str) -> str:
    return passage_id.rsplit("#", 1)[0].replace("_", " ")


def squad_articles(split: str) -> list[str]:
    """"train" (SQuAD train_articles minus VAL_ARTICLES) or "val" (VAL_ARTICLES)."""
    allowed = json.loads(_squad("split.json").read_text())["train_articles"]
    assert all(a in allowed for a in VAL_ARTICLES)
    if split == "val":
        return list(VAL_ARTICLES)
    if split == "train":
        return [a for a in allowed if a not in VAL_ARTICLES]
    raise ValueError(f"unknown split {split!r}")


def squad_passages(articles: list[str]) -> list[Passage]:
    wanted = set(articles)
    return [Passage(p["passage_id"], p["text"], "squad") for p in _jsonl(_squad("passages.jsonl")) if p["title"] in wanted]


def squad_questions(articles: list[str]) -> list[Utterance]:
    wanted = set(articles)
    return [Utterance(q["question"].strip(), "squad_question", q["passage_id"])
            for q in _jsonl(_squad("questions.jsonl")) if _squad_title(q["passage_id"]) in wanted]


def medquad_passages() -> list[Passage]:
    return [Passage(p["passage_id"], p["text"], "medquad") for p in _jsonl(_medquad("passages.jsonl"))]


def medquad_questions() -> list[Utterance]:
    # MedQuAD's templates put a space before "?": say it the way a person would write it.
    return [Utterance(q["question"].replace(" ?", "?").strip(), "medquad_question", q["passage_id"])
            for q in _jsonl(_medquad("questions.jsonl"))]


def passage_sentences(passages: list[Passage], kind: str) -> list[Utterance]:
    """Speakable sentences of paragraphs with at least two sentences (so ICT has a context)."""
    out = []
    for p in passages:
        sentences = split_sentences(p.text)
        if len(sentences) < 2:
            continue
        out += [Utterance(s, kind, p.passage_id, i) for i, s in enumerate(sentences) if speakable(s)]
    return out


# ---- prose that Debian installs ------------------------------------------------------

_ROFF_ESCAPES = re.compile(r"\\f[BIRP]|\\f\(..|\\\(..|\\[&e-]|\\s[+-]?\d|\\\*\(..|\\\*.")


def _man_page_prose(path: Path) -> str:
    """Running text of a man page: roff requests dropped, font escapes removed."""
    try:
        raw = gzip.open(path, "rt", errors="replace").read() if path.suffix == ".gz" else path.read_text(errors="replace")
    except (OSError, EOFError, gzip.BadGzipFile):
        return ""
    lines = [_ROFF_ESCAPES.sub("", line) for line in raw.splitlines() if line and not line.startswith((".", "'"))]
    return " ".join(lines)


def debian_prose(limit_files: int | None = None) -> list[Utterance]:
    """Sentences from man pages (sections 1, 5, 7, 8) and plain-text docs under /usr/share/doc."""
    files = []
    for section in ("man1", "man5", "man7", "man8"):
        files += sorted(Path("/usr/share/man", section).glob("*"))
    for pattern in ("README*", "*.txt", "NEWS*"):
        files += sorted(p for p in Path("/usr/share/doc").glob(f"*/{pattern}") if p.is_file())
    # WordNet is a source of its own (`wordnet_glosses`): its pages stay out of the prose, so
    # that installing it leaves the prose, and so the plans made before, as they were.
    files = [p for p in files if "wordnet" not in str(p) and not re.search(r"\.\dWN\b", p.name)]
    files = files[:limit_files] if limit_files else files
    seen, out = set(), []
    for path in files:
        text = _man_page_prose(path) if "/man/" in str(path) else _read_doc(path)
        for sentence in split_sentences(re.sub(r"\s+", " ", text)):
            if speakable(sentence) and sentence.lower() not in seen:
                seen.add(sentence.lower())
                out.append(Utterance(sentence, "prose", extra={"file": path.name}))
    return out


# The prose pool's digest (`prose_digest`) on the machines that made the recipe (this project's
# Debian image; rebuilt there on 2026-12-06, a training plan made sessions before came out byte
# for byte the same). Other man pages and docs give another pool, so another plan and phonetic
# IDF: `checked_debian_prose` says so, rather than letting `make train` make another model unseen.
RECIPE_PROSE_DIGEST = "cd6b8b73aeb67eb2"


def prose_digest(utterances: list[Utterance]) -> str:
    """The first 16 hex digits of the SHA-256 of the pool's sentences, in order."""
    return hashlib.sha256("\n".join(u.text for u in utterances).encode()).hexdigest()[:16]


def checked_debian_prose() -> list[Utterance]:
    """`debian_prose`, with a warning on stderr when it is not the recipe's pool."""
    prose = debian_prose()
    digest = prose_digest(prose)
    if digest != RECIPE_PROSE_DIGEST:
        print(f"warning: this machine's man pages and /usr/share/doc give another prose pool than the recipe's "
              f"({len(prose):,} sentences, digest {digest}, not {RECIPE_PROSE_DIGEST}): the training plan and the "
              "phonetic IDF will differ, so the model will not be the shipped one (the recipe's pool is that of the "
              "Debian 12 machines that made it)", file=sys.stderr)
    return prose


def _read_doc(path: Path) -> str:
    try:
        if path.suffix == ".gz":
            return gzip.open(path, "rt", errors="replace").read(200_000)
        return path.read_text(errors="replace")[:200_000]
    except (OSError, EOFError, gzip.BadGzipFile, UnicodeDecodeError):
        return ""


# ---- WordNet's glosses (Debian's wordnet-base) ----------------------------------------

WORDNET = Path("/usr/share/wordnet")


def wordnet_glosses(directory: Path = WORDNET) -> list[Utterance]:
    """One utterance per WordNet synset: its words, then their definition, e.g.
    "Priestley, Joseph Priestley: English chemist who isolated many gases and discovered oxygen".

    Why: most words of validation questions that training never heard are names and terms
    (Mongolian, Priestley, Samarkand, photosynthesis) that no other allowed text holds, and
    WordNet's 117,659 glosses hold about half of them.
    """
    if not (directory / "data.noun").is_file():
        raise SystemExit(f"error: WordNet is not installed ({directory}/data.noun is missing): apt-get install -y wordnet-base")
    out = []
    for part in ("noun", "verb", "adj", "adv"):
        with (directory / f"data.{part}").open(errors="replace") as f:
            for line in f:
                if line.startswith(" "):  # the licence, at the top of each file
                    continue
                fields, _, gloss = line.partition(" | ")
                fields = fields.split()
                count = int(fields[3], 16)  # then `count` pairs of (word, lexical id)
                names = [re.sub(r"\(\w+\)$", "", w).replace("_", " ") for w in fields[4 : 4 + 2 * count : 2]]
                definition = re.split(r'[;:]\s*"', gloss)[0].strip().rstrip(";:")  # quoted examples follow it
                text = f"{', '.join(dict.fromkeys(names))}: {definition}"
                if speakable(text):
                    out.append(Utterance(text, "wordnet"))
    return out

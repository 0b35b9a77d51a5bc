"""Write `seal_rag/common_words.txt`: the words questions are made of, for `seal_rag.spelling`.

The 3,000 most frequent words of the SQuAD questions on the training articles (validation and
held-out articles left out, as everywhere in training), so a spoken question's own words (what, which, century, located) can
be spelled even where the knowledge base's passages never use them.

    python -m training.common_words    # reads $SEAL_RAG_DATA (or --data)
"""

from __future__ import annotations

import argparse
from collections import Counter

from seal_rag.bench.data import add_data_argument, data_root
from seal_rag.spelling import COMMON_WORDS, words_of

from . import text_sources as ts
from .config import run_command

COUNT = 3000


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_argument(parser)
    args = parser.parse_args(argv)
    ts.use_data(data_root(args.data))
    counts: Counter = Counter()
    for question in ts.squad_questions(ts.squad_articles("train")):
        counts.update(words_of(question.text))
    words = sorted(counts, key=lambda w: (-counts[w], w))[:COUNT]
    header = (f"# The {len(words)} most frequent words of SQuAD 1.1's questions (CC BY-SA 4.0) on the project's training\n"
              "# articles; made by `python -m training.common_words`. Read by seal_rag/spelling.py.\n")
    COMMON_WORDS.write_text(header + "\n".join(words) + "\n", encoding="utf-8")
    print(f"wrote {len(words)} words to {COMMON_WORDS}")


if __name__ == "__main__":
    run_command(main)

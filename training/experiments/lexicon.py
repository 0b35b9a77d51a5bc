"""Which validation words did training never hear, and could any training text supply them?

    python -m training.experiments.lexicon --config training/experiments/configs/more.toml
    python -m training.experiments.lexicon --config training/experiments/configs/more.toml --model seal_rag/models/seal-base-minilm

It counts the words of the validation questions (the config's cached `plan_val.jsonl`) that
no text of the training plan (`plan_train.jsonl`) holds, and how many of those any text
source allowed for training (`text_sources`: all of SQuAD's training articles, MedQuAD, the
Debian prose and WordNet's glosses, spoken or not) holds. If they are topic words that only
the knowledge base itself has, more general text cannot teach them and `seal-rag adapt` is the
lever. Text only: no audio and no model, unless `--model` asks for that model's validation
figures (cached int8 states, as `training.evaluate`), the cascade's and the oracle's, split by
whether a question holds a word training never heard. No held-out set is read.
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter
from pathlib import Path

import numpy as np

from seal_rag.bench.data import add_data_argument

from .. import text_sources as ts
from ..config import load_config
from ..evaluate import Validation, format_row, rank_metrics

WORD = re.compile(r"[a-z0-9']+")


def words(text: str) -> list[str]:
    return WORD.findall(text.lower())


def plan_texts(cache_dir: Path, split: str) -> list[str]:
    with (cache_dir / f"plan_{split}.jsonl").open() as f:
        return [json.loads(line)["text"] for line in f]


def available_texts() -> list[str]:
    """Every text the training split may use, whether the plan spoke it or not."""
    articles = ts.squad_articles("train")
    utterances = (ts.squad_questions(articles) + ts.passage_sentences(ts.squad_passages(articles), "squad_sentence")
                  + ts.medquad_questions() + ts.passage_sentences(ts.medquad_passages(), "medquad_sentence")
                  + ts.debian_prose() + ts.wordnet_glosses())
    return [u.text for u in utterances]


def coverage(data: dict) -> dict:
    """Counts of the validation questions' words that the training plan never spoke."""
    cache_dir = Path(data["cache_dir"]).expanduser()
    heard = Counter(w for text in plan_texts(cache_dir, "train") for w in words(text))
    questions = plan_texts(cache_dir, "val")
    tokens = [w for q in questions for w in words(q)]
    unheard = [w for w in tokens if not heard[w]]
    available = Counter(w for text in available_texts() for w in words(text))
    return dict(heard=heard, questions=len(questions), words=len(tokens), distinct=len(set(tokens)), unheard=Counter(unheard),
                questions_with_unheard=sum(any(not heard[w] for w in words(q)) for q in questions),
                unheard_available=sum(available[w] > 0 for w in unheard))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True)
    add_data_argument(parser)
    parser.add_argument("--model", help="also split this model's validation figures (a SpeechEmbedding directory)")
    parser.add_argument("--top", type=int, default=20, help="list this many of the commonest unheard words")
    args = parser.parse_args()
    ts.use_data(args.data)
    data = load_config(args.config)["data"]
    c = coverage(data)
    unheard = sum(c["unheard"].values())
    print(f"{c['questions']} validation questions, {c['words']} words; training plan: {len(c['heard'])} distinct words")
    print(f"words training never heard: {unheard} ({unheard / c['words']:.1%} of words, "
          f"{len(c['unheard']) / c['distinct']:.1%} of distinct words); questions with one: "
          f"{c['questions_with_unheard']} ({c['questions_with_unheard'] / c['questions']:.1%})")
    print(f"of those words, in some text training may use (WordNet's glosses included): {c['unheard_available']}")
    print("commonest: " + ", ".join(f"{w} {n}" for w, n in c["unheard"].most_common(args.top)))
    if args.model:
        print("| questions | system | Top-1 | Top-10 | MRR |\n|---|---|---|---|---|")
        for label, figures in split_figures(data, args.model, c["heard"]).items():
            print(format_row(label, figures))


def split_figures(data: dict, model_dir: str, heard: Counter) -> dict[str, dict[str, float]]:
    """The model's, the cascade's and the oracle's Top-1/Top-10/MRR on questions with and without an unheard word,
    keyed "<questions> (<count>) | <system>"."""
    import torch

    from seal_rag import SealConfig

    from ..model import HeadModel
    from ..train_common import warm_start

    validation = Validation(data["cache_dir"], data.get("val_corpus", "all"))
    head = HeadModel(SealConfig.load(Path(model_dir) / "config.json"), data["pool"])
    warm_start(head, model_dir)
    with torch.no_grad():
        scores = {"model": validation.head_queries(head) @ head.project_text(validation.passage_base).T}
    passages = validation.passage_base.numpy()
    scores["cascade beam 5"] = validation.cascade_base() @ passages.T
    scores["text oracle"] = validation.clips.targets.numpy() @ passages.T
    has_unheard = np.array([any(not heard[w] for w in words(item["text"])) for item in validation.clips.items])
    return {f"{label} ({mask.sum()}) | {system}": rank_metrics(np.asarray(matrix)[mask], validation.gold[mask])
            for label, mask in (("with an unheard word", has_unheard), ("every word heard", ~has_unheard))
            for system, matrix in scores.items()}


if __name__ == "__main__":
    main()

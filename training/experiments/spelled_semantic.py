"""Issue 32: the semantic half from the decoded phonemes, spelled with the knowledge base's words (`seal_rag.spelling`).

Validation only: the 400 validation questions spoken by piper (the validation family), against the
1,551 validation paragraphs, through the encodings `training.unseen_voices` cached. For each
condition it prints Top-1 / MRR@10 of the spelled semantic half alone and as served (KB decoding,
then keyword re-ranking) at several weights, for the best decoding spelled (as shipped) against the
5-best's vectors averaged, and with fuzzy matching (as shipped) against exact pronunciations only;
the speech tower's own semantic half as served is the control.

    python -m training.unseen_voices --split val --families piper --no-cascade --prepare
    python -m training.experiments.spelled_semantic
"""

from __future__ import annotations

import argparse
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from seal_rag import spelling
from seal_rag.bench.data import add_data_argument, data_root
from seal_rag.bench.metrics import gold_ranks, summarise
from seal_rag.bench.served import keyword_scores
from seal_rag.kb_decoding import DecodingSettings
from seal_rag.keyword_rerank import KeywordReranker

from ..config import run_command
from ..unseen_voices import EvalSet, Runner, passage_halves, val_sets

WEIGHTS = (0.5, 0.6, 0.7, 0.8, 0.9)


@dataclass
class PiperValidation:
    """The validation questions spoken by piper, their cached encodings, the 1,551 paragraphs' halves and a reranker."""

    model: object
    chosen: EvalSet
    runner: Runner
    passages: dict
    reranker: KeywordReranker

    def figures(self, scores: np.ndarray) -> str:
        m = summarise(gold_ranks(scores, self.chosen.passage_ids, [q.gold for q in self.chosen.queries]))
        return f"{m['top1']['mean']:.3f} / {m['mrr@10']['mean']:.3f}"


def piper_validation(description: str, argv: list[str] | None) -> tuple[PiperValidation, argparse.Namespace]:
    """Parse `--model`, `--cache`, `--threads`, `--data` and load what the validation experiments score with."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--model", type=Path, default=Path("seal_rag/models/seal-base-minilm"))
    parser.add_argument("--cache", type=Path, default=Path("/tmp/unseen"))
    parser.add_argument("--threads", type=int, default=2)
    add_data_argument(parser)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    from seal_rag import SpeechEmbedding

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = SpeechEmbedding.from_pretrained(args.model)
    chosen = val_sets(data_root(args.data), ["piper"], 400)[0]
    runner = Runner(model, args.cache, chosen, ["clean", "noisy"])
    reranker = KeywordReranker.from_texts(chosen.passages, decoding=DecodingSettings())
    return PiperValidation(model, chosen, runner, passage_halves(model, args.cache, chosen), reranker), args


def main(argv: list[str] | None = None) -> None:
    v, _ = piper_validation(__doc__.splitlines()[0], argv)
    model, runner, passages, reranker, chosen, figures = v.model, v.runner, v.passages, v.reranker, v.chosen, v.figures
    decoder = reranker.decoder

    for condition in runner.conditions:
        semantic, logits, _ = runner.loaded(condition)
        nbests = [decoder.nbest(x) if len(x) else [] for x in logits]
        phonetic = np.stack([decoder.phonetic_vector(x, model.phonetic, n) for x, n in zip(logits, nbests)]) @ passages["phonetic"].T
        halves = {"speech tower's semantic half (control)": semantic}
        for fuzzy in (True, False):
            floor = spelling.MIN_SIMILARITY if fuzzy else 1.01  # above any cosine: exact pronunciations only
            speller = spelling.Speller(decoder.speller.pronunciations, decoder.speller.spellings)
            original, spelling.MIN_SIMILARITY = spelling.MIN_SIMILARITY, floor
            try:
                best = [speller.spell(n[0][0]) if n else "" for n in nbests]
                five = [[speller.spell(text) for text, _ in n[:5]] or [""] for n in nbests]
            finally:
                spelling.MIN_SIMILARITY = original
            kind = "fuzzy" if fuzzy else "exact only"
            halves[f"spelled, best decoding, {kind}"] = model.text_semantic([t or " " for t in best])
            averaged = np.stack([model.text_semantic([t or " " for t in texts]).mean(axis=0) for texts in five])
            halves[f"spelled, 5-best averaged, {kind}"] = averaged / np.linalg.norm(averaged, axis=1, keepdims=True)
        print(f"\nvalidation, piper, {condition}: Top-1 / MRR@10")
        print("| semantic half | alone | " + " | ".join(f"as served, weight {w}" for w in WEIGHTS) + " |")
        print("|---|---|" + "---|" * len(WEIGHTS))
        w0 = model.config.phonetic_weight
        for name, vectors in halves.items():
            cosines = vectors @ passages["semantic"].T
            # As the index scores a unit query weighed by w (`SpeechEmbedding.weighted`): the weighed sum
            # over the query's norm before normalising, which sets the keyword evidence's share.
            norms = {w: np.sqrt((1 - w) ** 2 / (1 - w0) + w**2 / w0) for w in WEIGHTS}
            served = [keyword_scores(reranker, ((1 - w) * cosines + w * phonetic) / norms[w], logits, chosen.passages)
                      for w in WEIGHTS]
            print(f"| {name} | {figures(cosines)} | " + " | ".join(figures(s) for s in served) + " |", flush=True)


if __name__ == "__main__":
    with torch.no_grad():
        run_command(main)

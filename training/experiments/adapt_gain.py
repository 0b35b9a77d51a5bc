"""What `seal-rag adapt` gains on our validation split, and what it costs per 1,000 passages.

    python -m training.experiments.adapt_gain --config training/configs/base.toml
    nice -n 19 python -m training.experiments.adapt_gain --config training/configs/base.toml --max-passages 20 --steps 100
    python -m training.experiments.adapt_gain --config training/configs/base.toml --kb corpus
    python -m training.experiments.adapt_gain --config training/experiments/configs/more.toml --kb val --reader-lr-scale 0.2

The validation split's knowledge base is, by default (`--kb val`), the paragraphs of the 4
validation articles (`text_sources.VAL_ARTICLES`), from which no training text came. With
`--kb corpus` it is all 1,551 paragraphs the questions are retrieved among, as a user's whole
index would be: then `--max-sentences` lets adapt hear only part of it, as on the held-out
sets' larger knowledge bases. `adapt` reads only the text and speaks it with training voices;
the validation questions, spoken by validation voices (`evaluate.Validation`), are never shown
to it. The shipped model and its adapted copy are then scored as `training.evaluate --model`
scores a model: each question against all paragraphs of the corpus, on the real inference
path (fp32 torch encoder).

The cost is `adapt`'s wall time (speaking, encoding and training), and from its rates the
time for a 1,000-passage knowledge base: speaking grows with the sentences spoken (capped by
`--max-sentences`), and so does training unless `--steps` fixes it.
"""

from __future__ import annotations

import argparse
import json
import warnings

import numpy as np
import torch

from seal_rag.adapt import adapt
from seal_rag.config import ADAPT_MAX_SENTENCES
from seal_rag.bench.data import add_data_argument

from .. import text_sources as ts
from ..config import load_config
from ..evaluate import Validation, format_row, metrics

ENCODE_BATCH = 8


@torch.no_grad()
def speech_figures(validation: Validation, models: dict) -> dict[str, dict[str, float]]:
    """Top-1/Top-10/MRR of each model on the validation audio; with a phonetic half, of each half too.

    The models share one frozen encoder and text tower (adapting changes the semantic head
    only), so the audio is encoded once, the passages are embedded once, and each model embeds
    the same states.
    """
    first = next(iter(models.values()))
    audio = validation.clips.audio
    states = []
    for start in range(0, len(audio), ENCODE_BATCH):
        states += first.speech.encode_clips(audio[start : start + ENCODE_BATCH])  # (positions, d_model) each
    passages = validation.passage_vectors(first)
    figures = {}
    for name, model in models.items():
        queries = np.concatenate([model.embed_states(states[i : i + ENCODE_BATCH]) for i in range(0, len(states), ENCODE_BATCH)])
        figures[name] = metrics(queries, passages, validation.gold)
        figures.update(validation.half_figures(model, queries, passages, name))
    return figures


def seconds_per_1000_passages(result, max_sentences: int, fixed_steps: bool) -> float:
    """`adapt`'s wall time for 1,000 passages like these, from this run's rates.

    Speaking grows with the sentences spoken, at this run's sentences per passage up to the
    `max_sentences` cap. So does training by default (a fixed number of passes); with
    `--steps` given it is that many steps, whatever the size.
    """
    sentences = min(max_sentences, result.sentences / result.passages * 1000)
    train = result.train_seconds if fixed_steps else sentences * result.train_seconds / result.sentences
    return sentences * result.speak_seconds / result.sentences + train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True)
    add_data_argument(parser)
    parser.add_argument("--model", help="the base model directory [default: the shipped model]")
    parser.add_argument("--kb", choices=["val", "corpus"], default="val",
                        help="adapt to the 4 validation articles' paragraphs, or to the whole retrieval corpus")
    parser.add_argument("--max-passages", type=int, help="adapt to only the first N paragraphs of the --kb (a quick check)")
    parser.add_argument("--steps", type=int, default=None, help="as `seal-rag adapt --steps` [default: 5 passes over the clips]")
    parser.add_argument("--max-sentences", type=int, default=ADAPT_MAX_SENTENCES, help="as `seal-rag adapt --max-sentences`")
    parser.add_argument("--lr", type=float, default=None, help="as `adapt(lr=)` [default: adapt's]")
    parser.add_argument("--reader-lr-scale", type=float, default=None, help="as `adapt(reader_lr_scale=)` [default: adapt's]")
    parser.add_argument("--takes", type=int, default=None, help="as `adapt(takes=)`: voices per sentence [default: adapt's]")
    parser.add_argument("--spans", type=int, default=None, help="as `adapt(spans=)`: clips per sentence of a random run of its words")
    parser.add_argument("--fp32", action="store_true", help="train in fp32 even where the CPU has native bf16 (`adapt(bf16=False)`)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save", help="also write the adapted model directory here")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (1 to run two beside each other)")
    args = parser.parse_args()
    ts.use_data(args.data)
    torch.set_num_threads(args.threads)
    config = load_config(args.config)
    validation = Validation(config["data"]["cache_dir"], config["data"].get("val_corpus", "all"))
    kb = validation.passages if args.kb == "corpus" else ts.squad_passages(ts.squad_articles("val"))
    texts = [p.text for p in kb][: args.max_passages]
    print(f"knowledge base: {len(texts)} paragraphs ({args.kb}); {len(validation.clips)} validation questions "
          f"against {len(validation.passages)} paragraphs")

    from seal_rag import SpeechEmbedding

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the shipped model is experimental: known, and the point here
        base = SpeechEmbedding.from_pretrained(args.model)
    options = {name: value for name, value in [("lr", args.lr), ("reader_lr_scale", args.reader_lr_scale), ("takes", args.takes), ("spans", args.spans), ("bf16", False if args.fp32 else None)] if value is not None}
    result = adapt(base, texts, steps=args.steps, max_sentences=args.max_sentences, seed=args.seed, **options)
    assert result.model.space_fingerprint == base.space_fingerprint  # the index need not be re-embedded
    if args.save:
        result.model.save_pretrained(args.save)

    figures = speech_figures(validation, {"shipped": base, "adapted": result.model})
    print("| model | Top-1 | Top-10 | MRR |\n|---|---|---|---|")
    print(format_row(f"shipped {base.name}", figures["shipped"]))
    print(format_row(f"adapted ({result.sentences} sentences, {result.steps} steps)", figures["adapted"]))
    for half in ("semantic", "phonetic"):
        for name in ("shipped", "adapted"):
            if f"{name}/{half}" in figures:
                print(format_row(f"{name}, {half} half alone", figures[f"{name}/{half}"]))
    per_1000 = seconds_per_1000_passages(result, args.max_sentences, fixed_steps=args.steps is not None)
    print(f"adapt wall time: {result.seconds:.0f} s for {len(texts)} passages (speaking and encoding {result.sentences} "
          f"sentences {result.speak_seconds:.0f} s, {result.speak_seconds / result.sentences:.2f} s each; training "
          f"{result.steps} steps {result.train_seconds:.0f} s); a 1,000-passage knowledge base: {per_1000:.0f} s")
    print(json.dumps({"kb": args.kb, "passages": len(texts), "sentences": result.sentences, "steps": result.steps, "seconds": round(result.seconds, 1),
                      "speak_seconds": round(result.speak_seconds, 1), "train_seconds": round(result.train_seconds, 1),
                      "seconds_per_1000_passages": round(per_1000, 1),
                      **{name: {k: round(v, 4) for k, v in f.items()} for name, f in figures.items()}}))


if __name__ == "__main__":
    main()

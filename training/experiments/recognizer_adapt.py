"""Issue 32 lever: `seal-rag adapt` tunes the phoneme recognizer too. Makes the models to score.

    python -m training.experiments.recognizer_adapt --out /tmp/recognizer_adapt --recognizer-lr 2e-4
    # then each model on piper, the validation family nothing here speaks with:
    python -m training.unseen_voices --split val --families piper --no-cascade --model /tmp/recognizer_adapt/both

The knowledge base is the validation split's whole retrieval corpus (the 1,551 paragraphs that
`training.unseen_voices --split val` ranks), as a user's index would be. `adapt` reads only its
text and speaks it with training voices; the validation questions are never shown to it. One
`adapt` run tunes the semantic head and the recognizer on the same clips with separate losses
and optimisers, so swapping weights afterwards gives every combination of one run:
- `semantic`: today's `adapt` (head tuned, recognizer as shipped);
- `recognizer`: the shipped head with the tuned recognizer (the lever alone);
- `both`: what `adapt(recognizer_lr=...)` returns.
"""

from __future__ import annotations

import argparse
import copy
import json
import warnings
from pathlib import Path

import torch

from seal_rag.adapt import adapt
from seal_rag.bench.data import add_data_argument

from .. import text_sources as ts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_data_argument(parser)
    parser.add_argument("--out", type=Path, required=True, help="a folder for the three model directories")
    parser.add_argument("--recognizer-lr", type=float, required=True)
    parser.add_argument("--model", help="the base model directory [default: the shipped model]")
    parser.add_argument("--max-sentences", type=int, default=None, help="as `seal-rag adapt --max-sentences`")
    parser.add_argument("--families", nargs="+", default=["espeak", "flite"],
                        help="the families adapt speaks with: those the model's recognizer was trained on (`espeak` for a flite-held-out model)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    ts.use_data(args.data)
    torch.set_num_threads(args.threads)
    texts = [p.text for p in ts.squad_passages(ts.squad_articles("train") + ts.squad_articles("val"))]

    from seal_rag import SpeechEmbedding

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the shipped model is experimental: known, and the point here
        base = SpeechEmbedding.from_pretrained(args.model)
    options = {"max_sentences": args.max_sentences} if args.max_sentences else {}
    result = adapt(base, texts, seed=args.seed, recognizer_lr=args.recognizer_lr, families=tuple(args.families), **options)
    both = result.model
    semantic = copy.deepcopy(both)
    semantic.phonetic.recognizer.load_state_dict(base.phonetic.recognizer.state_dict())
    recognizer = copy.deepcopy(base)
    recognizer.phonetic.recognizer.load_state_dict(both.phonetic.recognizer.state_dict())
    for name, model in {"both": both, "semantic": semantic, "recognizer": recognizer}.items():
        model.save_pretrained(args.out / name)
        assert model.space_fingerprint == base.space_fingerprint  # the index need not be re-embedded
    (args.out / "run.json").write_text(json.dumps({
        "passages": len(texts), "sentences": result.sentences, "steps": result.steps, "recognizer_lr": args.recognizer_lr, "families": args.families,
        "speak_seconds": round(result.speak_seconds, 1), "train_seconds": round(result.train_seconds, 1)}, indent=1) + "\n")
    print(f"adapted to {result.sentences} clips of {len(texts)} paragraphs: head {result.steps} steps, recognizer one pass "
          f"(speaking {result.speak_seconds:.0f} s, training {result.train_seconds:.0f} s): {args.out}/{{both,semantic,recognizer}}")


if __name__ == "__main__":
    main()

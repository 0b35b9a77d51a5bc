"""Where validation loses: to voices training never heard, or to words it never heard?

    python -m training.experiments.gap --config training/experiments/configs/more.toml --model seal_rag/models/seal-base-minilm

Validation speaks unseen questions with unseen voices. This speaks the same 400 validation
questions with training voices too, and 400 questions of the training articles (spoken in
training, by other voices and seeds) with both kinds of voice, all clean as validation is.
Each set retrieves among the same 1,551 paragraphs, on cached int8 states like validation.
If the training-voice rows are far above the validation-voice rows, more voices would help;
if the training-text rows are, more (or the knowledge base's own, `seal-rag adapt`) text.
Nothing here reads a held-out set. The sets are cached under `<cache_dir>/gap/`.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import torch

from seal_rag import SealConfig

from .. import text_sources as ts
from ..cache import plan_entries, write_shard
from ..config import command_line, load_config, parse_command_line
from ..evaluate import Validation, metrics
from ..model import HeadModel
from ..train_common import warm_start

QUESTIONS = 400
# name: (whose questions, whose voices)
SETS = {
    "val_texts_train_voices": ("val", "train"),
    "train_texts_val_voices": ("train", "val"),
    "train_texts_train_voices": ("train", "train"),
}


def questions(data: dict, texts: str) -> list[ts.Utterance]:
    if texts == "val":  # validation's own questions, in its order
        plan = [json.loads(line) for line in (Path(data["cache_dir"]).expanduser() / "plan_val.jsonl").open()]
        return [ts.Utterance(p["text"], p["kind"], p["passage_id"]) for p in plan]
    return random.Random(f"{data['seed']}:gap").sample(ts.squad_questions(ts.squad_articles("train")), QUESTIONS)


def make_set(data: dict, name: str) -> Path:
    """Speak and cache one set once, as a one-shard validation split of its own directory."""
    from tqdm import tqdm

    from seal_rag.augment import AugmentConfig
    from seal_rag.whisper_int8 import Ct2WhisperEncoder
    from seal_rag.model_sources import DEFAULT_TEXT_MODEL
    from seal_rag.text_tower import load_sentence_model

    base = Path(data["cache_dir"]).expanduser()
    directory = base / "gap" / name
    if (directory / "val_00000.npz").is_file():
        return directory
    directory.mkdir(parents=True, exist_ok=True)
    texts, voices = SETS[name]
    plan = plan_entries([(u, voices) for u in questions(data, texts)], f"{data['seed']}:gap:{name}", "val", 0)
    (directory / "plan_val.jsonl").write_text("".join(json.dumps(p) + "\n" for p in plan))
    corpus = directory / "corpus_all_base.npy"  # the paragraphs' embeddings, shared with validation
    if not corpus.exists():
        corpus.symlink_to(base / "corpus_all_base.npy")
    encoder, text_model = Ct2WhisperEncoder(data.get("threads", 2)), load_sentence_model(DEFAULT_TEXT_MODEL)
    with tqdm(total=len(plan), desc=name, unit="clip") as progress:
        write_shard(directory / "val_00000.npz", plan, encoder, text_model, data["pool"], "val", AugmentConfig(), progress)
    return directory


def main() -> None:
    parser = command_line(__doc__)
    parser.add_argument("--model", required=True, help="a SpeechEmbedding directory (its head runs on the cached states)")
    args = parse_command_line(parser)
    torch.set_num_threads(2)
    data = load_config(args.config)["data"]
    head = HeadModel(SealConfig.load(Path(args.model) / "config.json"), data["pool"])
    warm_start(head, args.model)
    print("| questions, voices | Top-1 | Top-10 | MRR | cosine | oracle Top-1 |\n|---|---|---|---|---|---|")
    directories = {"val_texts_val_voices": Path(data["cache_dir"]).expanduser()}
    directories |= {name: make_set(data, name) for name in SETS}
    for name, directory in directories.items():
        validation = Validation(directory)
        m = validation.evaluate_head(head)
        oracle = metrics(validation.clips.targets.numpy(), validation.passage_base.numpy(), validation.gold)
        print(f"| {name.replace('_texts_', ' texts, ').replace('_voices', ' voices')} | {m['top1']:.3f} | {m['top10']:.3f} "
              f"| {m['mrr']:.3f} | {m['cos']:.3f} | {oracle['top1']:.3f} |", flush=True)


if __name__ == "__main__":
    main()

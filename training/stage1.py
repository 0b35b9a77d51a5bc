"""Stage 1 (SEAL): align the speech head with the text model by MSE on cached encoder states.

    python -m training.stage1 --config training/configs/base.toml
    python -m training.stage1 --config training/configs/smoke.toml   # < 1 min, used by the tests

For each clip, the head's pooled output should equal the text model's own embedding of the
transcript. Both are unit vectors, so the MSE is 2 - 2 cos. The loss is taken before the
shared scaling layer, which stays the identity here: trained on MSE alone it could shrink
both towers onto one point and score zero. Stage 2 may train it, where contrastive losses
prevent that collapse. Options: `w_ctc` adds CTC on word pieces (`ctc.py`); `w_layers`, for a
token-level head, adds the text model's lower layers as targets (`layer_targets.py`).

Killed midway, the same command resumes from `out_dir/ckpt.pt`. The best checkpoint by
validation MRR is exported to `out_dir/best/` as a `SpeechEmbedding` model directory.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from .data import completed_shards, length_bucketed_batches, load_clips
from .evaluate import Validation
from .model import HeadModel, export, seal_config
from .config import make_folder, require, run_command
from .train_common import Run, load_checkpoint, main, make_optimizer, seed_everything, use_bf16, warm_start


def mse(pooled: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    predicted = nn.functional.normalize(pooled, dim=-1)  # (batch, text_dim)
    return ((predicted - targets) ** 2).sum(dim=-1).mean()


# What train() reads, checked at its start (some only at the first batch or the release).
REQUIRED = {
    "stage1": ("out_dir", "seed", "steps", "lr", "warmup", "eval_interval", "batch_size"),
    "data": ("cache_dir", "pool"),
    "model": (),
}


def train(config: dict) -> dict:
    section, data, model_section = (require(config, table, keys) for table, keys in REQUIRED.items())
    out_dir = Path(section["out_dir"]).expanduser()
    make_folder(out_dir, "[stage1] out_dir")
    torch.set_num_threads(data.get("threads", 2))
    rng = seed_everything(section["seed"])

    checkpoint = load_checkpoint(out_dir / "ckpt.pt")
    # The shard list is fixed at the first start and kept in the checkpoint, so a resumed run
    # trains on the same clips even if caching has made more shards since.
    shards = checkpoint["shards"] if checkpoint else completed_shards(data, "train")
    clips = load_clips(data["cache_dir"], "train", shards, section.get("max_clips"))
    validation = Validation(data["cache_dir"], data.get("val_corpus", "all"))
    print(f"stage 1: {len(clips)} training clips from {len(clips.shards)} shards, {len(validation.clips)} validation clips")

    architecture = seal_config(model_section)
    w_ctc, w_layers = section.get("w_ctc", 0.0), section.get("w_layers", 0.0)
    if w_layers and not architecture.token_level:  # the layers are read from the text model reading the head
        raise SystemExit("error: stage1.w_layers needs a token-level head: set token_level = true in [model]")
    text_model = None
    if architecture.token_level or w_ctc:  # loaded once, for the head's reader and the branches below
        from seal_rag.text_tower import load_sentence_model

        text_model = load_sentence_model(architecture.text_model)
    model = HeadModel(architecture, data["pool"], text_model, bf16=use_bf16(section), below_top=data.get("below_top", 0))
    if w_ctc:  # the auxiliary CTC branch trains with the head and is left out of the export
        from .ctc import CtcBranch, word_pieces

        model.ctc = CtcBranch(text_model, model.config.text_dim)
        pieces = word_pieces(text_model, [item["text"] for item in clips.items])
    if w_layers:  # match the text model's lower layers too
        from .layer_targets import LayerTargets

        layers = LayerTargets(model.head.reader, text_model.tokenizer)
    if section.get("init") and not checkpoint:  # continue an earlier stage 1, e.g. with context layers added
        warm_start(model, section["init"])
    optimizer = make_optimizer(model, section, train_scaling=False)
    run = Run("stage 1", config, section, model, optimizer, rng, clips.shards, validation, checkpoint)
    if section.get("init") and not checkpoint:
        run.validate()  # the starting point, so the continued run must beat it

    def new_epoch() -> list[list[int]]:  # random batches of similar-length clips
        return length_bucketed_batches(list(range(len(clips))), clips.lengths, section["batch_size"], rng)

    def batch_loss(batch: list[int]):
        states, lengths = clips.batch(batch, section.get("time_mask", 0.0), rng)
        states = nn.functional.dropout(states, section.get("feature_dropout", 0.0), training=True)
        if w_layers:
            spoken = layers.of_positions(*model.head.positions(*model.head_input(states, lengths)))
            aligned = mse(spoken[-1], clips.targets[batch])
            lower = layers.loss(spoken, [clips.items[i]["text"] for i in batch])
            return aligned + w_layers * lower, {"mse": aligned, "layers": lower}
        if not w_ctc:
            return mse(model(states, lengths), clips.targets[batch]), {}
        positions, mask = model.head.positions(*model.head_input(states, lengths))
        aligned = mse(model.head.pool(positions, mask), clips.targets[batch])
        ctc = model.ctc.loss(positions, mask.sum(dim=1), [pieces[i] for i in batch])
        return aligned + w_ctc * ctc, {"mse": aligned, "ctc": ctc}

    return run.train(new_epoch, batch_loss, export)


if __name__ == "__main__":
    run_command(lambda: main(train, __doc__))

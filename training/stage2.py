"""Stage 2: multi-task contrastive fine-tuning of the speech head, from the stage 1 result.

    python -m training.stage2 --config training/configs/base.toml

Losses, weighted by [stage2] in the config:
- InfoNCE: a spoken query against its positive passage, with the other positives of the
  batch as negatives plus one hard negative per query mined by the text model. Positives are
  the gold paragraph of a real question (SQuAD training articles, MedQuAD), or, for a spoken
  sentence, the rest of its paragraph (the inverse cloze task, ICT).
- CoSENT: within a batch, the speech-to-text similarities should be ordered as the text
  model orders the transcripts among themselves.
- MSE: stage 1's alignment loss, kept as a regulariser.

Resumes from `out_dir/ckpt.pt` like stage 1; exports the best by validation MRR to `out_dir/best/`.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch
from torch import nn

from seal_rag.atomic_file import atomic_path
from seal_rag.sentences import context_without

from . import text_sources as ts
from .data import ClipSet, completed_shards, length_bucketed_batches, load_clips
from .evaluate import Validation
from .model import HeadModel, export, seal_config
from .stage1 import mse
from .config import make_folder, require, run_command
from .train_common import Run, load_checkpoint, main, make_optimizer, seed_everything, use_bf16, warm_start

HARD_NEGATIVE_POOL = 8  # candidates per query; one is drawn each time the query is used


class PairSet:
    """For each clip that has a positive: the positive's text-model embedding and hard negatives."""

    def __init__(self, clips: ClipSet, cache_dir: Path, text_model=None, kinds: list[str] | None = None):
        squad = {p.passage_id: p for p in ts.squad_passages(ts.squad_articles("train"))}
        medquad = {p.passage_id: p for p in ts.medquad_passages()} if any(
            i["kind"].startswith("medquad") for i in clips.items) else {}
        documents = squad | medquad
        self.clip_index, positives = [], []
        for n, item in enumerate(clips.items):
            passage = documents.get(item["passage_id"])
            if passage is None or (kinds is not None and item["kind"] not in kinds):
                continue  # prose (no positive), or a kind left out by `pair_kinds`
            text = passage.text if item["sentence_index"] < 0 else context_without(passage.text, item["sentence_index"])
            self.clip_index.append(n)
            positives.append(text)
        # Every document the positives were cut from is a candidate hard negative.
        names = sorted({clips.items[n]["passage_id"] for n in self.clip_index})
        texts = sorted(set(positives) | {documents[p].text for p in names})
        base = _embed_cached(texts, cache_dir / "stage2_text_base", text_model)
        row = {t: i for i, t in enumerate(texts)}
        self.text_base = torch.from_numpy(base)  # (documents, text_dim)
        self.positive = torch.tensor([row[t] for t in positives])
        self.source = torch.tensor([row[documents[clips.items[n]["passage_id"]].text] for n in self.clip_index])
        # Mine with the transcript's text embedding, skipping the positive and its own paragraph.
        queries = clips.targets[self.clip_index]
        scores = queries @ self.text_base.T  # (pairs, documents)
        scores[torch.arange(len(scores)), self.positive] = -2
        scores[torch.arange(len(scores)), self.source] = -2
        self.hard = scores.topk(HARD_NEGATIVE_POOL, dim=1).indices  # (pairs, HARD_NEGATIVE_POOL)

    def __len__(self) -> int:
        return len(self.clip_index)


def _embed_cached(texts: list[str], stem: Path, text_model) -> np.ndarray:
    """Text-model embeddings of `texts`, kept on disk per text (by hash), so a run on more
    shards embeds only the texts it has not seen."""
    keys = [hashlib.sha256(t.encode()).hexdigest()[:20] for t in texts]
    store = stem.with_name(f"{stem.name}.npz")
    known: dict[str, np.ndarray] = {}
    if store.is_file():
        with np.load(store) as saved:
            known = dict(zip(saved["keys"].tolist(), saved["vectors"]))
    missing = sorted({t for t, k in zip(texts, keys) if k not in known})
    if missing:
        if text_model is None:
            from seal_rag.model_sources import DEFAULT_TEXT_MODEL
            from seal_rag.text_tower import load_sentence_model

            text_model = load_sentence_model(DEFAULT_TEXT_MODEL)
        vectors = text_model.encode(missing, batch_size=32, convert_to_numpy=True, show_progress_bar=True).astype(np.float32)
        known |= {hashlib.sha256(t.encode()).hexdigest()[:20]: v for t, v in zip(missing, vectors)}
        with atomic_path(store) as partial:
            np.savez(partial, keys=np.array(list(known)), vectors=np.stack(list(known.values())))
    return np.stack([known[k] for k in keys])


def info_nce(queries: torch.Tensor, candidates: torch.Tensor, candidate_ids: torch.Tensor, positive_ids: torch.Tensor,
             temperature: float) -> torch.Tensor:
    """Cross-entropy of each query over all candidates; candidate j is query j's positive.

    Candidates holding the same text as a query's positive (MedQuAD repeats answers) are
    masked out rather than counted as negatives.
    """
    logits = queries @ candidates.T / temperature  # (batch, candidates)
    same = candidate_ids[None, :] == positive_ids[:, None]
    same[torch.arange(len(queries)), torch.arange(len(queries))] = False
    logits = logits.masked_fill(same, float("-inf"))
    return nn.functional.cross_entropy(logits, torch.arange(len(queries)))


def cosent(similarities: torch.Tensor, targets: torch.Tensor, scale: float) -> torch.Tensor:
    """CoSENT within each row: if target[i,j] > target[i,k], want sim[i,j] > sim[i,k].

    loss = log(1 + sum over such (i,j,k) of exp(scale * (sim[i,k] - sim[i,j]))).
    """
    difference = scale * (similarities[:, None, :] - similarities[:, :, None])  # [i, j, k] = s_ik - s_ij
    wanted = targets[:, :, None] > targets[:, None, :]  # t_ij > t_ik
    difference = difference.masked_fill(~wanted, float("-inf")).flatten()
    return torch.logsumexp(torch.cat([torch.zeros(1), difference]), dim=0)


# What train() reads, checked at its start (some only at the first batch or the release).
REQUIRED = {
    "stage2": ("out_dir", "seed", "steps", "lr", "warmup", "eval_interval", "batch_size", "hard_negatives", "temperature",
               "cosent_scale", "w_nce", "w_cosent", "w_mse"),
    "data": ("cache_dir", "pool"),
    "model": (),
}


def train(config: dict) -> dict:
    section, data, model_section = (require(config, table, keys) for table, keys in REQUIRED.items())
    out_dir = Path(section["out_dir"]).expanduser()
    make_folder(out_dir, "[stage2] out_dir")
    cache_dir = Path(data["cache_dir"]).expanduser()
    torch.set_num_threads(data.get("threads", 2))
    rng = seed_everything(section["seed"])

    checkpoint = load_checkpoint(out_dir / "ckpt.pt")
    shards = checkpoint["shards"] if checkpoint else completed_shards(config["data"], "train")
    clips = load_clips(cache_dir, "train", shards, section.get("max_clips"))
    # `pair_kinds` limits the pairs, e.g. to leave out MedQuAD's inverse cloze: its 20,000
    # long, all-different positives would take an hour of text-model time to embed.
    pairs = PairSet(clips, cache_dir, kinds=section.get("pair_kinds"))
    validation = Validation(cache_dir, data.get("val_corpus", "all"))
    print(f"stage 2: {len(clips)} clips, {len(pairs)} with a positive, {len(pairs.text_base)} documents")

    model = HeadModel(seal_config(model_section), data["pool"], bf16=use_bf16(section), below_top=data.get("below_top", 0))
    optimizer = make_optimizer(model, section, train_scaling=section.get("train_scaling", False))
    run = Run("stage 2", config, section, model, optimizer, rng, clips.shards, validation, checkpoint)
    if not checkpoint:
        if section.get("init"):
            warm_start(model, section["init"])
        else:  # `init = ""`: the stage-2-only ablation, from the same seeded head stage 1 starts from
            print("no init: stage 2 starts from an untrained head (stage 2 only)")
        run.validate()  # the starting point, so stage 2 must beat it

    def new_epoch() -> list[list[int]]:  # random batches of similar-length clips
        return length_bucketed_batches(list(range(len(pairs))), clips.lengths[pairs.clip_index], section["batch_size"], rng)

    def batch_loss(chosen: list[int]):
        batch = [pairs.clip_index[i] for i in chosen]
        states, lengths = clips.batch(batch, section.get("time_mask", 0.0), rng)
        states = nn.functional.dropout(states, section.get("feature_dropout", 0.0), training=True)
        head_out = model(states, lengths)  # (batch, text_dim)
        queries = nn.functional.normalize(model.scaling(head_out), dim=-1)

        positive_ids = pairs.positive[chosen]
        hard_ids = pairs.hard[chosen, torch.randint(0, HARD_NEGATIVE_POOL, (len(chosen),))]
        candidate_ids = torch.cat([positive_ids, hard_ids]) if section["hard_negatives"] else positive_ids
        candidates = model.project_text(pairs.text_base[candidate_ids])
        loss_nce = info_nce(queries, candidates, candidate_ids, positive_ids, section["temperature"])

        targets = clips.targets[batch]
        similarities = queries @ model.project_text(targets).T  # speech i vs transcript j
        loss_cosent = cosent(similarities, targets @ targets.T, section["cosent_scale"])
        loss_mse = mse(head_out, targets)
        loss = section["w_nce"] * loss_nce + section["w_cosent"] * loss_cosent + section["w_mse"] * loss_mse
        return loss, {"nce": loss_nce, "cosent": loss_cosent, "mse": loss_mse}

    return run.train(new_epoch, batch_loss, export)


if __name__ == "__main__":
    run_command(lambda: main(train, __doc__))

"""Cached clips in memory: pooled encoder states, targets, and the plan entry of each clip."""

from __future__ import annotations

import hashlib
import json
import random
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from seal_rag.atomic_file import atomic_path
from seal_rag.safe_text import for_terminal
from seal_rag.speech_tower import pad_batch


@dataclass
class ClipSet:
    """All clips of some shards. `states[offsets[i]:offsets[i]+lengths[i]]` is clip i."""

    states: torch.Tensor  # (total_positions, 512) fp16
    offsets: np.ndarray
    lengths: np.ndarray
    targets: torch.Tensor  # (n, text_dim) the text model's embedding of each transcript
    items: list[dict]  # plan entries: text, kind, passage_id, sentence_index, voice
    shards: list[str]
    audio: list[np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.items)

    def batch(self, indices, time_mask: float = 0.0, rng: random.Random | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Padded `(batch, positions, 512)` float32 states and `(batch,)` lengths.

        `time_mask`: zero one random span covering up to this share of each clip (SpecAugment's
        time masking), so the head cannot lean on any single word.
        """
        clips = []
        for i in indices:
            x = self.states[self.offsets[i] : self.offsets[i] + self.lengths[i]].float()
            if time_mask and rng is not None and x.shape[0] > 4:
                width = rng.randint(0, int(time_mask * x.shape[0]))
                start = rng.randint(0, x.shape[0] - width)
                x = x.clone()
                x[start : start + width] = 0
            clips.append(x)
        return pad_batch(clips)


def planned_size(data: dict, split: str) -> int | None:
    """How many clips a config's [data] plans for `split` (None for validation: its pool decides)."""
    if split != "train":
        return None
    return sum(sum(mix.values()) for mix in [data["mix"], *data.get("extend", [])])


def cached_shards(cache_dir: str | Path, split: str) -> list[str]:
    return sorted(p.name for p in Path(cache_dir).expanduser().glob(f"{split}_[0-9]*.npz") if ".tmp" not in p.name)


def shard_number(name: str) -> int:
    """`"train_00207.npz"` -> 207."""
    return int(name.rsplit("_", 1)[1].split(".")[0])


def shard_numbers(ranges: str) -> set[int]:
    """`"0:80,207:255"` -> {0, ..., 79, 207, ..., 254}: shard numbers as half-open ranges."""
    try:
        bounds = [tuple(map(int, part.split(":"))) for part in ranges.split(",")]
    except ValueError:
        bounds = [()]
    if any(len(pair) != 2 for pair in bounds):
        raise SystemExit(f"error: shards {ranges!r} is not a list of ranges: write them as start:end, e.g. \"0:80,207:255\"")
    return {k for start, end in bounds for k in range(start, end)}


def shard_ranges(names: list[str]) -> str:
    """The inverse of `shard_numbers`, from shard files: [train_00000.npz, train_00001.npz, train_00005.npz] -> "0:2,5:6"."""
    numbers = sorted(map(shard_number, names))
    starts = [n for n in numbers if n - 1 not in numbers]
    ends = [n + 1 for n in numbers if n + 1 not in numbers]
    return ",".join(f"{a}:{b}" for a, b in zip(starts, ends))


def completed_shards(data: dict, split: str) -> list[str]:
    """The cached shards of the config's own plan (a config that extends it may have cached more),
    only those of `[data] shards` where the config names some (an ablation on part of the plan)."""
    names = cached_shards(data["cache_dir"], split)
    size = planned_size(data, split)
    if size is None:
        return names
    count = -(-size // data["shard_size"])  # shards of the plan
    wanted = shard_numbers(data["shards"]) if data.get("shards") else range(count)
    return [name for name in names if shard_number(name) < count and shard_number(name) in wanted]


def load_clips(cache_dir: str | Path, split: str, shards: list[str] | None = None, max_clips: int | None = None) -> ClipSet:
    """Load the named shards (default: every shard file of `split` in the cache, `cached_shards`), up to `max_clips` clips.

    The states of 60k clips take about 9 GB in fp16. They are joined once into one `.npy` file
    per shard list, which is then memory-mapped: two runs training side by side on the same
    shards share one copy in the page cache instead of holding 9 GB each.
    """
    cache_dir = Path(cache_dir).expanduser()
    plan_path = cache_dir / f"plan_{split}.jsonl"
    shards = shards if shards is not None else cached_shards(cache_dir, split)
    if not plan_path.is_file() or not shards:
        raise SystemExit(f"error: no cached {split} clips in {for_terminal(cache_dir)}: run `sh training/run_cache.sh CONFIG` with this config first")
    plan = [json.loads(line) for line in plan_path.open()]
    lengths, targets, indices, used = [], [], [], []
    count = 0
    for name in shards:  # the small arrays only
        if max_clips and count >= max_clips:
            break
        with np.load(cache_dir / name) as shard:
            lengths.append(shard["lengths"])
            targets.append(shard["targets"])
            indices.append(shard["indices"])
        count += len(lengths[-1])
        used.append(name)
    lengths_all = np.concatenate(lengths).astype(np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths_all)[:-1]])
    states = joined_states(cache_dir, split, used, int(lengths_all.sum()))
    audio = []
    if split == "val":  # validation shards also keep the audio, for the full model and the cascade
        for name in used:
            with np.load(cache_dir / name) as shard:
                ends = np.cumsum(shard["audio_lengths"])
                audio += [a.astype(np.float32) / 32767 for a in np.split(shard["audio"], ends[:-1])]
    return ClipSet(
        states=states,
        offsets=offsets,
        lengths=lengths_all,
        targets=torch.from_numpy(np.concatenate(targets)),
        items=[plan[i] for i in np.concatenate(indices)],
        shards=used,
        audio=audio or None,
    )


def joined_states(cache_dir: Path, split: str, shards: list[str], positions: int) -> torch.Tensor:
    """The states of `shards`, in order, as one read-only memory-mapped `(positions, d_model)` fp16 tensor."""
    digest = hashlib.sha1("\n".join(shards).encode()).hexdigest()[:12]
    path = cache_dir / f"joined_{split}_{digest}.npy"
    if not path.is_file():
        with atomic_path(path) as partial:
            out, filled = None, 0
            for name in shards:
                with np.load(cache_dir / name) as shard:
                    block = shard["states"]
                if out is None:
                    out = np.lib.format.open_memmap(partial, mode="w+", dtype=block.dtype, shape=(positions, block.shape[1]))
                out[filled : filled + len(block)] = block
                filled += len(block)
            out.flush()
            del out
    mapped = np.load(path, mmap_mode="r")
    if mapped.shape[0] != positions:
        raise ValueError(f"{path} holds {mapped.shape[0]} positions, expected {positions}: delete it to rebuild")
    with warnings.catch_warnings():  # read-only is the point: batches copy what they take
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(mapped)


def length_bucketed_batches(indices: list[int], lengths: np.ndarray, batch_size: int, rng: random.Random,
                            bucket_batches: int = 16) -> list[list[int]]:
    """Shuffle `indices` into batches of similar-length clips.

    Take `bucket_batches` batches' worth at random, sort them by length and cut; then shuffle
    the batches. Padding is then a few percent instead of about half of every batch, which
    about halves the cost of a step, while each batch is still a random draw.
    """
    indices = rng.sample(indices, len(indices))
    batches = []
    chunk = batch_size * bucket_batches
    for start in range(0, len(indices), chunk):
        bucket = sorted(indices[start : start + chunk], key=lambda i: lengths[i])
        batches += [bucket[k : k + batch_size] for k in range(0, len(bucket), batch_size) if len(bucket[k : k + batch_size]) == batch_size]
    rng.shuffle(batches)
    return batches

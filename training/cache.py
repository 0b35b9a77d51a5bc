"""Speak a plan of texts, encode them with the frozen Whisper encoder, and keep the states on disk.

    python -m training.cache --config training/configs/base.toml            # training clips
    python -m training.cache --config training/configs/base.toml --split val

The plan (which text, which voice, which random seed) is fixed up front and written to
`plan_<split>.jsonl`, in a shuffled order so that any prefix of it is a fair sample of
the mix: a run stopped early still leaves useful shards. A config's `[[data.extend]]` mixes grow
the plan on disk at its end, so more data costs only the new clips. Work is done in shards of
`shard_size` clips; a shard is done once its `.npz` holds its slice of the plan (written to a
temporary name, then renamed), so a killed run resumes at the first missing shard.

Each shard holds, per clip: encoder states mean-pooled over `pool` positions (zero-padded to
a multiple of `pool` first, exactly as `training.model` pools them) in fp16, and the text
tower's own embedding of the transcript (the stage-1 target). Validation shards also keep
the audio (int16), so the cascade and the full model can be run on the same clips.

Encoding uses CTranslate2 int8 at the clip's real length (about 3x faster than fp32 torch,
cosine 0.9975 to it), one clip at a time: batching does not speed it up on this CPU.
With `[data] below_top = n` it keeps instead what training needs to tune Whisper's top n
layers: the fp32 torch encoder's states n layers short of the top, at full resolution
(`pool` then applies after those layers, in `training.model`), about 280 kB a clip.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from seal_rag.atomic_file import atomic_path
from seal_rag.audio import SAMPLE_RATE, WINDOW_SAMPLES
from seal_rag.augment import AugmentConfig, augment
from seal_rag.safe_text import for_terminal
from seal_rag.whisper_int8 import Ct2WhisperEncoder
from seal_rag.tts import SynthesisError, synthesize
from seal_rag.voices import TRAINING_FAMILIES, Voice, pick_voice

from . import text_sources as ts
from .config import command_line, load_config, make_folder, parse_command_line, positive_int, require, run_command
from .data import planned_size, shard_numbers

# What run() reads of [data], checked before any work starts.
REQUIRED_DATA = ("cache_dir", "seed", "pool", "shard_size", "mix", "val_questions")

HOP_PAIR = 320  # samples per encoder position (2 mel frames of 10 ms): clips are cut to a multiple


# ---- the plan -------------------------------------------------------------------------

def build_plan(data: dict, split: str, done: list[dict] | None = None) -> list[dict]:
    """Every clip to make: text, kind, gold passage, voice and a per-clip seed. Deterministic.

    For training, `[data.mix]` is the plan. Each `[[data.extend]]` mix is appended after it,
    in order (texts not planned yet, where the pool has them), so a cache keeps all its shards
    when the plan grows. `done` is a plan already made for `[data.mix]` and the first extends:
    only the rest is built. It is kept as it is, because a pool can change under it (installing
    a Debian package adds man pages to the prose).
    """
    rng = random.Random(data["seed"])
    families = tuple(data.get("families", TRAINING_FAMILIES))
    if split == "val":
        questions = ts.squad_questions(ts.squad_articles("val"))
        chosen = rng.sample(questions, min(data["val_questions"], len(questions)))
        return plan_entries([(u, "val") for u in chosen], data["seed"], split, 0, families)
    if split != "train":
        raise ValueError(f"unknown split {split!r}")
    pools = _training_pools()
    plan = list(done) if done else plan_entries(_pick(data["mix"], pools, rng, set()), data["seed"], split, 0, families)
    for number, (mix, end) in enumerate(zip(data.get("extend", []), plan_ends(data)[1:])):
        if len(plan) >= end:
            continue  # made already
        planned = {p["text"].lower() for p in plan}
        seed = f"{data['seed']}:extend" + (f":{number}" if number else "")  # the first was made before the others existed
        more = _pick(mix, pools, random.Random(seed), planned)
        plan += plan_entries(more, data["seed"], split, len(plan), families)
    return plan


def _same_mixes(plan: list[dict], data: dict) -> bool:
    """Whether `plan` holds exactly `[data.mix]` and the first extends, kind by kind."""
    mixes = [data["mix"], *data.get("extend", [])]
    ends = plan_ends(data)
    if len(plan) not in ends:
        return False
    wanted = Counter()
    for mix in mixes[: ends.index(len(plan)) + 1]:
        wanted.update({kind: n for kind, n in mix.items() if n})
    return Counter(p["kind"] for p in plan) == wanted


def plan_ends(data: dict) -> list[int]:
    """The training plan's length after `[data.mix]` and after each `[[data.extend]]`."""
    sizes = [sum(mix.values()) for mix in [data["mix"], *data.get("extend", [])]]
    return [sum(sizes[: n + 1]) for n in range(len(sizes))]


def _training_pools() -> dict:
    articles = ts.squad_articles("train")
    return {  # built only when asked for: reading every man page takes a while
        "squad_question": lambda: ts.squad_questions(articles),
        "squad_sentence": lambda: ts.passage_sentences(ts.squad_passages(articles), "squad_sentence"),
        "medquad_question": lambda: _dedupe(ts.medquad_questions()),
        "medquad_sentence": lambda: _dedupe(ts.passage_sentences(ts.medquad_passages(), "medquad_sentence")),
        "prose": ts.checked_debian_prose,
        "wordnet": ts.wordnet_glosses,
    }


def _pick(mix: dict, pools: dict, rng: random.Random, planned: set[str]) -> list[tuple]:
    """`mix[kind]` utterances of each kind, shuffled together; unplanned texts first, then repeats
    (a repeated text gets another random voice and augmentation)."""
    unknown = sorted(set(mix) - set(pools))
    if unknown:
        raise SystemExit(f"error: the config's text mix ([data.mix] or [[data.extend]]) names {for_terminal(', '.join(unknown))}: the text kinds are {', '.join(pools)}")
    utterances = []
    for kind, make_pool in pools.items():
        want = mix.get(kind, 0)
        if not want:
            continue
        pool = make_pool()
        if not pool:  # rng.sample of an empty pool would never fill `want`
            raise SystemExit(f"error: this machine has no {kind} texts for the config's text mix: set {kind} = 0 in the config, or install their source")
        fresh = [u for u in pool if u.text.lower() not in planned]
        picks = rng.sample(fresh, min(want, len(fresh)))
        while len(picks) < want:  # several voices for the same text
            picks += rng.sample(pool, min(want - len(picks), len(pool)))
        utterances += [(u, "train") for u in picks]
    rng.shuffle(utterances)
    return utterances


def plan_entries(utterances: list[tuple], seed: int, split: str, start: int,
                 families: tuple[str, ...] = TRAINING_FAMILIES) -> list[dict]:
    """Plan entries for `(utterance, voice split)` pairs: a voice and a clip seed each, fixed by
    `seed` and position; voices only of `families`."""
    plan = []
    for index, (u, voice_split) in enumerate(utterances, start):
        clip_rng = random.Random(f"{seed}:{split}:{index}")
        voice = pick_voice(voice_split, clip_rng, families)
        plan.append(dict(index=index, text=u.text, kind=u.kind, passage_id=u.passage_id,
                         sentence_index=u.sentence_index, voice=asdict(voice), seed=clip_rng.getrandbits(32)))
    return plan


def _dedupe(utterances: list[ts.Utterance]) -> list[ts.Utterance]:
    seen, out = set(), []
    for u in utterances:
        if u.text.lower() not in seen:
            seen.add(u.text.lower())
            out.append(u)
    return out


def load_or_write_plan(directory: Path, data: dict, split: str) -> list[dict]:
    path = directory / f"plan_{split}.jsonl"
    wanted = planned_size(data, split)
    if path.is_file():  # resume: the plan on disk wins, so shards stay consistent with it
        plan = [json.loads(line) for line in path.open()]
        if wanted is None or len(plan) == wanted:
            return plan
        # The plan on disk and this config's differ in length: one must extend the other.
        if not _same_mixes(plan[: min(len(plan), wanted)], data):
            raise SystemExit(f"error: {for_terminal(path)} holds another plan than this config's: use another cache_dir")
        if len(plan) > wanted:  # a config that extends this one grew it
            return plan[:wanted]
        plan = build_plan(data, split, done=plan)  # a [[data.extend]] was added: append to the plan on disk
    else:
        plan = build_plan(data, split)
    partial = path.with_suffix(f".{os.getpid()}.tmp")  # two workers may race here; the plans are identical
    partial.write_text("".join(json.dumps(p) + "\n" for p in plan))
    partial.replace(path)
    return plan


# ---- encoding -------------------------------------------------------------------------

def pool_states(states: np.ndarray, pool: int) -> np.ndarray:
    """Mean over non-overlapping groups of `pool` positions, zero-padding the end first."""
    if pool == 1:
        return states
    pad = (-states.shape[0]) % pool
    states = np.pad(states, ((0, pad), (0, 0)))
    return states.reshape(-1, pool, states.shape[1]).mean(axis=1)


def make_clip(item: dict, split: str, augment_config: AugmentConfig) -> np.ndarray:
    rng = random.Random(item["seed"])
    clip = synthesize(item["text"], Voice(**item["voice"]), rng)
    if split == "train":
        clip = augment(clip, rng, augment_config)
    else:  # validation clips are clean speech with a little silence, like a recorded query
        clip = np.concatenate([np.zeros(int(0.1 * SAMPLE_RATE), np.float32), clip, np.zeros(int(0.1 * SAMPLE_RATE), np.float32)])
    return clip[: max(HOP_PAIR, clip.size // HOP_PAIR * HOP_PAIR)]


class BelowTopEncoder:
    """Whisper's fp32 torch encoder on one clip, stopped `below_top` layers short of the top."""

    def __init__(self, below_top: int):
        from seal_rag.whisper_torch import load_whisper_encoder

        self.encoder, self.below_top = load_whisper_encoder("whisper-base"), below_top

    @torch.no_grad()
    def __call__(self, clip: np.ndarray) -> np.ndarray:
        from seal_rag.audio import log_mel

        mel = log_mel(clip, self.encoder.n_mels)  # (n_mels, frames)
        hidden, _ = self.encoder(mel[None], torch.tensor([mel.shape[1]]), self.below_top)
        return hidden[0].numpy()


def write_shard(path: Path, items: list[dict], encoder, text_model, pool: int, split: str,
                augment_config: AugmentConfig, progress) -> None:
    states, lengths, audio, audio_lengths, kept = [], [], [], [], []
    for item in items:
        try:
            clip = make_clip(item, split, augment_config)
            if isinstance(encoder, BelowTopEncoder) and clip.size > WINDOW_SAMPLES:
                # One window of states per clip: a longer one could only be cut, away from its transcript.
                raise SynthesisError(f"{clip.size / SAMPLE_RATE:.1f} s of speech, over Whisper's 30 s window")
        except SynthesisError as error:  # rare: skip the text, keep the shard
            print(f"skipping clip {item['index']}: {error}")
            progress.update(1)
            continue
        pooled = pool_states(encoder(clip), pool).astype(np.float16)
        states.append(pooled)
        lengths.append(pooled.shape[0])
        kept.append(item)
        if split == "val":
            audio.append((clip * 32767).astype(np.int16))
            audio_lengths.append(clip.size)
        progress.update(1)
    targets = text_model.encode([i["text"] for i in kept], batch_size=64, convert_to_numpy=True).astype(np.float32)
    arrays = dict(states=np.concatenate(states), lengths=np.array(lengths, np.int32), targets=targets,
                  indices=np.array([i["index"] for i in kept], np.int64), last_planned=np.int64(items[-1]["index"]))
    if split == "val":
        arrays |= dict(audio=np.concatenate(audio), audio_lengths=np.array(audio_lengths, np.int64))
    with atomic_path(path) as partial:
        np.savez(partial, **arrays)


def shard_done(path: Path, items: list[dict]) -> bool:
    """Whether `path` holds its whole plan slice `items`. A plan that grew may have added clips
    to what was its last, partial shard; that shard is then made again (the same clips first)."""
    if not path.is_file():
        return False
    with np.load(path) as shard:
        last = int(shard["last_planned"]) if "last_planned" in shard else int(shard["indices"].max())
    return last == items[-1]["index"]


def shard_paths(directory: Path, split: str, count: int, shard_size: int) -> list[Path]:
    return [directory / f"{split}_{k:05d}.npz" for k in range((count + shard_size - 1) // shard_size)]


def run(config: dict, split: str, max_clips: int | None = None, worker: tuple[int, int] = (0, 1),
        plan_only: bool = False, only: set[int] | None = None) -> Path:
    """Make every missing shard of `split`; returns the cache directory.

    `worker=(i, n)` makes only shards k with k % n == i, so n processes can share the work.
    `only`: make only these shard numbers (a cheaper ablation: a prefix of the plan and its last
    extend); by default the config's `[data] shards`, if it names some.
    """
    from tqdm import tqdm

    from seal_rag.model_sources import DEFAULT_TEXT_MODEL
    from seal_rag.text_tower import load_sentence_model

    data = require(config, "data", REQUIRED_DATA)
    if only is None and data.get("shards") and split == "train":
        only = shard_numbers(data["shards"])
    directory = Path(data["cache_dir"]).expanduser()
    make_folder(directory, "[data] cache_dir")
    below_top = data.get("below_top", 0)
    meta = dict(pool=data["pool"], encoder="whisper-base ct2 int8", text_model=DEFAULT_TEXT_MODEL)
    if below_top:  # an older cache's meta has no such key, so it stays valid
        meta |= dict(encoder="whisper-base torch fp32", below_top=below_top)
    if "families" in data:  # a cache that holds a family out of training
        meta |= dict(families=list(data["families"]))
    meta_path = directory / "meta.json"
    if meta_path.is_file() and json.loads(meta_path.read_text()) != meta:
        raise SystemExit(f"error: {for_terminal(meta_path)} was made with other settings: use another cache_dir")
    if not meta_path.is_file():
        with atomic_path(meta_path) as partial:
            partial.write_text(json.dumps(meta))

    plan = load_or_write_plan(directory, data, split)
    if plan_only:
        print(f"{split}: plan of {len(plan)} clips in {for_terminal(directory)}")
        return directory
    if max_clips:
        plan = plan[:max_clips]
    size = data["shard_size"]
    paths = shard_paths(directory, split, len(plan), size)
    mine = [k for k in range(len(paths)) if k % worker[1] == worker[0] and (only is None or k in only)]
    todo = [k for k in mine if not shard_done(paths[k], plan[k * size : (k + 1) * size])]
    total = sum(len(plan[k * size : (k + 1) * size]) for k in mine)
    done_clips = total - sum(len(plan[k * size : (k + 1) * size]) for k in todo)
    if not todo:
        print(f"{split}: all {len(paths)} shards ({len(plan)} clips) already cached in {for_terminal(directory)}")
        return directory
    torch.set_num_threads(data.get("threads", 2))
    encoder = BelowTopEncoder(below_top) if below_top else Ct2WhisperEncoder(data.get("threads", 2))
    pool = 1 if below_top else data["pool"]  # below the top, training pools after the layers it runs (model.EncoderTop)
    text_model = load_sentence_model(DEFAULT_TEXT_MODEL)
    augment_config = AugmentConfig(**config.get("augment", {}))
    start = time.time()
    with tqdm(total=total, initial=done_clips, desc=f"cache {split} {worker[0]}/{worker[1]}", unit="clip", smoothing=0.05) as progress:
        for k in todo:
            write_shard(paths[k], plan[k * size : (k + 1) * size], encoder, text_model, pool, split,
                        augment_config, progress)
    print(f"{split}: cached {total - done_clips} clips in {time.time() - start:.0f} s -> {for_terminal(directory)}")
    return directory


def main() -> None:
    parser = command_line(__doc__)
    parser.add_argument("--split", default="train", choices=["train", "val"])
    parser.add_argument("--max-clips", type=positive_int, default=None, help="only the first N clips of the plan")
    parser.add_argument("--worker", default="0/1", help="i/n: this process makes shards k with k %% n == i")
    parser.add_argument("--plan-only", action="store_true", help="write the plan and stop (before starting workers)")
    parser.add_argument("--threads", type=positive_int, default=None, help="override data.threads")
    parser.add_argument("--shards", default=None, help="only these shards, as ranges: 0:80,207:255 (default: [data] shards, else all)")
    args = parse_command_line(parser)
    config = load_config(args.config)
    if args.threads:
        require(config, "data", ())["threads"] = args.threads
    try:
        i, n = (int(x) for x in args.worker.split("/"))
    except ValueError:
        i, n = -1, 0
    if not 0 <= i < n:
        parser.error(f"--worker {for_terminal(args.worker)}: give i/n with 0 <= i < n, e.g. 0/2")
    run(config, args.split, args.max_clips, (i, n), args.plan_only, shard_numbers(args.shards) if args.shards else None)


if __name__ == "__main__":
    run_command(main)

"""The one place that says which TTS voices train, which validate, and which nobody touches.

Three disjoint splits:
- "train": everything training may hear.
- "val": our own validation voices. Every choice (checkpoint, hyper-parameter, variant) is
  made on these, spoken over held-out *training* articles.
- "bench": never used here, by training or validation. Reserved for the held-out benchmark
  issue, so that its figures are on voices no part of training ever heard.

An espeak-ng voice is an accent plus a `+variant`. A combination belongs to "train" only if
both its accent and its variant are training ones; "val" uses val accents with any non-bench
variant and training accents with val variants; "bench" uses bench accents with bench
variants. Flite voices are whole speakers (kal and kal16 are the same speaker, so they stay
together).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

# `espeak-ng --voices=en`, without the MBROLA voices (the mbrola binary is not installed).
ESPEAK_ACCENTS = {
    "train": ["en-us", "en-gb", "en-gb-x-rp", "en-gb-scotland", "en-029"],
    "val": ["en-gb-x-gbcwmd"],
    "bench": ["en-us-nyc", "en-gb-x-gbclan"],
}

# `espeak-ng --voices=variant` (espeak-ng 1.51). "" is the accent's own default voice.
_ALL_VARIANTS = (
    "Alex Alicia Andrea Andy Annie AnxiousAndy Demonic Denis Diogo Gene Gene2 Henrique Hugo Jacky Lee Marco "
    "Mario Michael Mike Mr_serious Nguyen RicishayMax RicishayMax2 RicishayMax3 Storm Tweaky UniRobot adam anika "
    "anikaRobot announcer antonio aunty belinda benjamin boris caleb croak david ed edward edward2 f1 f2 f3 f4 f5 "
    "fast grandma grandpa gustave iven iven2 iven3 iven4 john kaukovalta klatt klatt2 klatt3 klatt4 klatt5 klatt6 "
    "linda m1 m2 m3 m4 m5 m6 m7 m8 marcelo max michel miguel norbert pablo paul pedro quincy rob robert robosoft "
    "robosoft2 robosoft3 robosoft4 robosoft5 robosoft6 robosoft7 robosoft8 sandro shelby steph steph2 steph3 "
    "travis victor whisper whisperf zac"
).split()
VAL_VARIANTS = ["f4", "m6", "klatt3", "Andy", "belinda", "iven3", "steph3", "john"]
BENCH_VARIANTS = ["f5", "m7", "klatt4", "Annie", "grandma", "edward2", "linda", "travis"]
TRAIN_VARIANTS = [""] + [v for v in _ALL_VARIANTS if v not in VAL_VARIANTS + BENCH_VARIANTS]

FLITE_VOICES = {
    "train": ["kal", "kal16", "awb"],
    "val": ["rms"],
    "bench": ["slt"],
}
# Share of clips spoken by flite. Flite is the more natural voice; espeak has the variety.
FLITE_SHARE = 0.3


@dataclass(frozen=True)
class Voice:
    """One TTS voice: engine "espeak" or "flite", a name, and an espeak variant ("" if none)."""

    engine: str
    name: str
    variant: str = ""

    @property
    def label(self) -> str:
        return f"{self.engine}:{self.name}" + (f"+{self.variant}" if self.variant else "")


def espeak_voices(split: str) -> list[Voice]:
    if split == "train":
        pairs = [(a, v) for a in ESPEAK_ACCENTS["train"] for v in TRAIN_VARIANTS]
    elif split == "val":
        pairs = [(a, v) for a in ESPEAK_ACCENTS["val"] for v in TRAIN_VARIANTS + VAL_VARIANTS]
        pairs += [(a, v) for a in ESPEAK_ACCENTS["train"] for v in VAL_VARIANTS]
    elif split == "bench":
        pairs = [(a, v) for a in ESPEAK_ACCENTS["bench"] for v in BENCH_VARIANTS]
    else:
        raise ValueError(f"unknown voice split {split!r}: use train, val or bench")
    return [Voice("espeak", a, v.replace("_", " ")) for a, v in pairs]


def flite_voices(split: str) -> list[Voice]:
    return [Voice("flite", name) for name in FLITE_VOICES[split]]


def pick_voice(split: str, rng: random.Random) -> Voice:
    """A random voice of a split: flite with probability FLITE_SHARE, else an espeak combination."""
    if rng.random() < FLITE_SHARE:
        return rng.choice(flite_voices(split))
    return rng.choice(espeak_voices(split))


def bench_voices() -> list[Voice]:
    """Every voice reserved for held-out benchmarks: no training or validation clip uses one."""
    return espeak_voices("bench") + flite_voices("bench")

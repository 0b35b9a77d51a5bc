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

Generalisation roles of whole synthesizer families (issue 32). The splits above are variants of
two families, so a "val" or "bench" espeak or flite voice still comes from a family training
heard. Only a family training never heard measures generalisation to new voices:
- espeak-ng and flite: training families (the shipped model trained on them). Their val
  variants validate as before; their bench variants are not unseen voices.
- piper (a neural VITS voice, `joe`, en_US): the *validation family*. The shipped model never
  heard it. Choices that are meant to generalise (decoding settings, checkpoints) are made on
  piper speaking the validation questions (`training.text_sources.VAL_ARTICLES`) against the
  whole validation knowledge base (`training/evaluate.py`'s corpus), and nothing may train on
  it. Held-out sets spoken by piper are held-out *questions* spoken by a validation family: they
  are not the unseen-family test, because piper chose settings.
- The unseen-family test is the reserved independent check (a fourth family that nothing here
  may use); with only these three families installed there is no fourth to hold out.
- An experiment may hold flite out instead (`[data] families` in a training config): trained on
  espeak alone, piper still validates; trained on espeak and piper, nothing is left to validate
  on, so it chooses nothing on an unseen family, and flite is the benchmark family either way.
`FAMILY_ROLES` says this in code; `tests/test_voices.py` checks that the roles stay disjoint.
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
# piper voices (engine "piper"): one packaged speaker, validation only (see the docstring).
PIPER_VOICES = {
    "train": [],
    "val": ["joe"],
    "bench": [],
}
# Each family's role across whole families: what training may hear, what validates generalisation.
FAMILY_ROLES = {"espeak": "train", "flite": "train", "piper": "val"}
# Share of clips spoken by flite. Flite is the more natural voice; espeak has the variety.
FLITE_SHARE = 0.3


@dataclass(frozen=True)
class Voice:
    """One TTS voice: engine "espeak", "flite" or "piper", a name, and an espeak variant ("" if none)."""

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


def piper_voices(split: str) -> list[Voice]:
    return [Voice("piper", name) for name in PIPER_VOICES[split]]


# Every speaker of a family that can be held out whole (kal16 is kal's speaker at 16 kHz, awb_time awb's).
HELD_OUT_VOICES = {"piper": [Voice("piper", "joe")],
                   "flite": [Voice("flite", name) for name in ("kal16", "awb", "rms", "slt")]}


def family_voices(family: str, roles: dict[str, str] = FAMILY_ROLES) -> list[Voice]:
    """Every voice of a whole family that `roles` keeps out of training (a "val" or "bench" family).

    `roles` defaults to the shipped model's; a model trained with a family held out has its own.
    """
    kept_out = [f for f, role in roles.items() if role in ("val", "bench") and f in HELD_OUT_VOICES]
    if family not in kept_out:
        raise ValueError(f"{family!r} is not a family held out of training: choose from {kept_out}")
    return HELD_OUT_VOICES[family]


TRAINING_FAMILIES = ("espeak", "flite")
# Families an experiment may train on. Training on piper takes away the validation family, so such
# a run holds flite out for the benchmark and chooses nothing on an unseen family (a fixed schedule).
TRAINABLE_FAMILIES = ("espeak", "flite", "piper")


def family_roles(families: tuple[str, ...] | list[str]) -> dict[str, str]:
    """Each family's role for a run that trains on `families` (`[data] families`): piper
    validates unless it trains, and a family neither trains nor validates is a benchmark one."""
    return {family: "train" if family in families else "val" if family == "piper" else "bench"
            for family in TRAINABLE_FAMILIES}


def pick_voice(split: str, rng: random.Random, families: tuple[str, ...] = TRAINING_FAMILIES) -> Voice:
    """A random voice of a split: flite with probability FLITE_SHARE, else an espeak combination.

    `families` leaves a family out (a run that holds flite out of training speaks those clips
    with espeak, or with piper's training voice when piper trains instead); the draw is made
    either way, so the rest of a plan stays the same. Piper has one speaker, so its clips are
    training clips only: validation keeps espeak there.
    """
    unknown = set(families) - set(TRAINABLE_FAMILIES)
    if unknown or not families:
        raise ValueError(f"cannot train on families {sorted(unknown) or '(none)'}: choose from {list(TRAINABLE_FAMILIES)}")
    if set(families) == {"piper"}:
        raise ValueError("cannot train on piper alone: its one speaker leaves no voice to validate on; add espeak")
    if {"flite", "piper"} <= set(families):
        raise ValueError("piper speaks the clips a plan gives flite: train on flite or on piper, not both")
    second = rng.random() < FLITE_SHARE  # the share of clips not spoken by espeak
    if second or "espeak" not in families:
        if "flite" in families:
            return rng.choice(flite_voices(split))
        if "piper" in families and split == "train":
            return rng.choice(HELD_OUT_VOICES["piper"])
    return rng.choice(espeak_voices(split))


def bench_voices() -> list[Voice]:
    """Every voice reserved for held-out benchmarks: no training or validation clip uses one."""
    return espeak_voices("bench") + flite_voices("bench")

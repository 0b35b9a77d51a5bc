"""TTS voices: roles stay disjoint, and the third family (piper) really speaks, at 16 kHz."""

import random

import numpy as np
import pytest

from seal_rag import voices
from seal_rag.audio import SAMPLE_RATE
from seal_rag.tts import synthesize
from seal_rag.voices import FAMILY_ROLES, Voice, bench_voices, espeak_voices, family_voices, flite_voices, piper_voices


def test_voice_splits_and_family_roles_are_disjoint():
    splits = {split: {v.label for v in espeak_voices(split) + flite_voices(split) + piper_voices(split)}
              for split in ("train", "val", "bench")}
    assert not splits["train"] & splits["val"] and not splits["train"] & splits["bench"] and not splits["val"] & splits["bench"]
    # A validation family is a whole family training never hears: none of its voices in any training split.
    for family, role in FAMILY_ROLES.items():
        engines = {label.split(":")[0] for label in splits["train"]}
        assert (family in engines) == (role == "train"), family
    assert {v.engine for v in family_voices("piper")} == {"piper"}
    assert not {v.label for v in family_voices("piper")} & {v.label for v in bench_voices()}
    rng = random.Random(0)
    assert {voices.pick_voice("train", rng).engine for _ in range(500)} == {"espeak", "flite"}  # training never draws piper
    with pytest.raises(ValueError, match="not a family held out of training"):
        family_voices("espeak")
    with pytest.raises(ValueError, match="not a family held out of training"):
        family_voices("flite")  # the shipped model trained on flite


def test_a_run_can_hold_flite_out_of_training_keeping_the_rest_of_its_plan():
    draws = [(random.Random(seed), random.Random(seed)) for seed in range(400)]
    both = [voices.pick_voice("train", a) for a, _ in draws]
    espeak_only = [voices.pick_voice("train", b, families=("espeak",)) for _, b in draws]
    assert {v.engine for v in espeak_only} == {"espeak"}
    # The clips the full plan gives espeak keep their voice; only flite's are re-voiced.
    kept = [(x, y) for x, y in zip(both, espeak_only) if x.engine == "espeak"]
    assert 200 < len(kept) < 400 and all(x == y for x, y in kept)
    assert {v.engine for v in (voices.pick_voice("train", random.Random(s), ("flite",)) for s in range(50))} == {"flite"}
    with pytest.raises(ValueError, match="cannot train on piper alone"):
        voices.pick_voice("train", random.Random(0), ("piper",))
    with pytest.raises(ValueError, match="cannot train on families"):
        voices.pick_voice("train", random.Random(0), ("mbrola",))
    with pytest.raises(ValueError, match="not both"):
        voices.pick_voice("train", random.Random(0), ("espeak", "flite", "piper"))
    # A run that trains on piper instead of flite: the same espeak clips, piper's one speaker for
    # the clips the plan gives flite, and espeak there on validation (piper cannot validate itself).
    draws = [(random.Random(seed), random.Random(seed), random.Random(seed)) for seed in range(400)]
    with_piper = [voices.pick_voice("train", a, ("espeak", "piper")) for a, _, _ in draws]
    plan = [voices.pick_voice("train", b) for _, b, _ in draws]
    assert all((x == y) if y.engine == "espeak" else x == voices.Voice("piper", "joe") for x, y in zip(with_piper, plan))
    assert {v.engine for v in (voices.pick_voice("val", c, ("espeak", "piper")) for _, _, c in draws)} == {"espeak"}
    # Held out of that run, flite is a whole benchmark family: all its speakers, none of training's espeak voices.
    roles = {"espeak": "train", "piper": "val", "flite": "bench"}
    held_out = family_voices("flite", roles)
    assert {v.engine for v in held_out} == {"flite"} and {v.name for v in held_out} >= {"kal16", "awb", "rms", "slt"}


def test_piper_speaks_real_16khz_audio_with_varied_speed():
    text = "What trading route joined Khwarezmia and the Mongol Empire?"
    clips = [synthesize(text, Voice("piper", "joe"), random.Random(seed)) for seed in range(3)]
    for clip in clips:
        assert clip.dtype == np.float32 and clip.ndim == 1
        seconds = clip.size / SAMPLE_RATE
        assert 1.5 < seconds < 8.0, seconds  # about 3.5 s
        assert 0.2 < np.abs(clip).max() <= 1.0 and np.sqrt(np.mean(clip**2)) > 0.02  # speech, not silence or clipping
        # Its energy is speech-like at 16 kHz: most of it below 4 kHz, little near Nyquist.
        spectrum = np.abs(np.fft.rfft(clip)) ** 2
        freqs = np.fft.rfftfreq(clip.size, 1 / SAMPLE_RATE)
        assert spectrum[freqs < 4000].sum() > 0.8 * spectrum.sum()
    assert len({c.size for c in clips}) == 3  # each seed draws its own speed
    with pytest.raises(ValueError, match="unknown piper voice"):
        synthesize(text, Voice("piper", "nobody"), random.Random(0))

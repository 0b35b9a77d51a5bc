"""Training augmentation: the voice-aimed effects change the clip, the defaults change nothing."""

import random

import numpy as np
import pytest

from seal_rag.augment import CODECS, AugmentConfig, augment, codec
from seal_rag.tts import synthesize
from seal_rag.voices import Voice


@pytest.fixture(scope="module")
def speech():
    return synthesize("The quick brown fox jumps over the lazy dog.", Voice("espeak", "en-us", ""), random.Random(1))


def test_defaults_draw_what_they_drew_before_the_voice_effects(speech):
    """A config without warp or codec draws no extra random numbers, so old caches' clips stay the same."""
    rng_a, rng_b = random.Random(7), random.Random(7)
    a = augment(speech, rng_a)
    b = augment(speech, rng_b, AugmentConfig(p_warp=0.0, p_codec=0.0))
    assert np.array_equal(a, b) and rng_a.random() == rng_b.random()


@pytest.mark.parametrize("name", sorted(CODECS))
def test_a_codec_round_trip_keeps_length_and_loses_detail(speech, name):
    out = codec(speech, name)
    assert out.dtype == np.float32 and out.size == speech.size
    assert 0 < np.abs(out).max() <= 1.5 and not np.allclose(out, speech, atol=1e-3)


def test_a_warp_changes_the_clip_length_as_a_speaker_with_another_tract_would(speech):
    quiet = dict(p_reverb=0, p_telephone=0, p_noise=0, p_gain=0, max_silence=0)
    plain = augment(speech, random.Random(3), AugmentConfig(**quiet))
    warped = augment(speech, random.Random(3), AugmentConfig(**quiet, p_warp=1.0, warp=(1.1, 1.1)))
    assert plain.size == speech.size and abs(warped.size - speech.size / 1.1) <= 2

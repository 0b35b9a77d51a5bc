"""The phonetic half: espeak-ng phonemes, the n-gram vectors both towers share, CTC decoding,
and the shipped recognizer hearing real synthetic speech."""

import numpy as np
import pytest
import torch

from seal_rag.config import SealConfig
from seal_rag.errors import ModelLoadError
from seal_rag.phonetic import PHONEMES, PhonemeRecognizer, PhoneticVectorizer, phoneme_ngrams, phonemize


def test_phonemize_spells_words_out_in_the_recognizer_symbols():
    phonemes = phonemize("Photosynthesis happens in Samarkand.")
    assert len(phonemes.split()) == 4
    assert set(phonemes) <= set(PHONEMES) and "ˈ" not in phonemes
    assert phonemize("knight") == phonemize("night")  # spelling gone, sound kept


def test_ngrams_stay_inside_words():
    assert phoneme_ngrams("ab cd", 2, 3) == [" a", "ab", "b ", " ab", "ab ", " c", "cd", "d ", " cd", "cd "]


def test_vectors_are_unit_and_sound_alike_texts_are_close():
    vectorizer = PhoneticVectorizer(np.ones(4096, np.float32))
    texts = ["Who was Joseph Priestley?", "a priestly joseph", "the price of oxygen tanks"]
    v = vectorizer.vectors([phonemize(t) for t in texts])
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert v[0] @ v[1] > v[0] @ v[2] + 0.2
    assert vectorizer.bucket(" pɹ") == PhoneticVectorizer(np.ones(4096)).bucket(" pɹ")  # stable across instances


def test_idf_weighs_rare_ngrams_above_common_ones():
    vectorizer = PhoneticVectorizer.fit(["ðə kæt", "ðə dɑːɡ", "ðə kʌvɚ", "zɛbɹə"], 4096)
    assert vectorizer.idf[vectorizer.bucket(" ðə ")] < vectorizer.idf[vectorizer.bucket(" zɛ")]


def test_greedy_ctc_merges_repeats_and_drops_blanks():
    recognizer = PhonemeRecognizer()
    path = [PHONEMES.index("k"), PHONEMES.index("k"), recognizer.blank, PHONEMES.index("æ"), recognizer.blank,
            PHONEMES.index("t"), recognizer.blank, PHONEMES.index("t"), 0, 0, PHONEMES.index("ə")]
    logits = torch.nn.functional.one_hot(torch.tensor([path]), len(PHONEMES) + 1).float()
    assert recognizer.decode(logits, torch.tensor([len(path)])) == ["kætt ə"]
    assert recognizer.decode(logits, torch.tensor([4])) == ["kæ"]  # padding past a clip's steps is ignored


def test_recognizer_halves_the_rate_and_ignores_padding():
    torch.manual_seed(0)
    recognizer = PhonemeRecognizer().eval()
    states = torch.randn(1, 50, 512)
    alone, steps = recognizer(states, torch.tensor([50]))
    padded, _ = recognizer(torch.cat([states, torch.zeros(1, 30, 512)], dim=1), torch.tensor([50]))
    assert steps.tolist() == [25] and alone.shape == (1, 25, len(PHONEMES) + 1)
    assert torch.allclose(alone[0], padded[0, :25], atol=1e-4)


def test_a_phonetic_weight_needs_phonetic_buckets():
    with pytest.raises(ModelLoadError, match="phonetic_weight"):
        SealConfig(phonetic_weight=0.5)
    with pytest.raises(ModelLoadError, match="phonetic_weight"):
        SealConfig(phonetic_dim=64, phonetic_weight=1.5)



def test_the_shipped_tower_hears_a_name_it_never_heard_and_finds_the_passage_that_spells_it(embedding):
    import difflib
    import random

    from seal_rag.tts import synthesize
    from seal_rag.voices import bench_voices

    assert embedding.phonetic is not None and embedding.dim == embedding.config.dim + embedding.config.phonetic_dim
    question = "What trading route joined Khwarezmia and the Mongol Empire?"
    voice = next(v for v in bench_voices() if v.engine == "flite")  # a voice training never used
    clip = synthesize(question, voice, random.Random(0))
    heard = embedding.phonetic.heard(embedding.speech.encode_clips([clip]))[0]
    assert difflib.SequenceMatcher(None, heard, phonemize(question)).ratio() > 0.6, heard  # 0.70 when written; random strings score about 0.3
    passages = [
        "The Silk Road connected Khwarezmia with the Mongol Empire, and Genghis Khan sent a trade caravan along it.",
        "Oxygen is the chemical element with the symbol O and atomic number 8.",
        "Packet switching groups data into packets that are sent over a digital network.",
        "Private schools are not administered by local, state or national governments.",
    ]
    scores = embedding.embed_clips([clip]) @ embedding.embed_texts(passages).T
    assert scores.argmax() == 0, scores

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
    # An odd length gets the steps it gets alone, however long the batch's padding.
    assert recognizer(states[:, :49], torch.tensor([49]))[1].tolist() == recognizer(torch.cat([states, states], 1), torch.tensor([49]))[1].tolist() == [24]


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


def test_soft_counts_are_expected_ngram_counts_of_a_confusion_network():
    from seal_rag.phonetic import SoftDecoding, soft_ngram_counts

    # Steps: "k" (two steps), blank, one step torn between "æ" (0.6) and "ɛ" (0.4), "t"; blank is the last class.
    symbols, blank = " kæɛt", 5
    probs = np.full((5, 6), 1e-9)
    probs[0, 1] = probs[1, 1] = probs[2, 5] = probs[4, 4] = 1.0
    probs[3, 2], probs[3, 3] = 0.6, 0.4
    counts = soft_ngram_counts(np.log(probs), blank, symbols, SoftDecoding(1.0, 3, 0.02), lambda g: g, 2, 3)
    assert counts["kæ"] == pytest.approx(0.6) and counts["kɛ"] == pytest.approx(0.4)
    assert counts[" kæ"] == pytest.approx(0.6) and counts["ɛt "] == pytest.approx(0.4) and counts[" k"] == pytest.approx(1.0)
    assert sum(v for g, v in counts.items() if len(g) == 2) == pytest.approx(4.0)  # as many bigrams as the 1-best has
    # Towards temperature 0, or with one alternative per slot, it is the greedy string's counts.
    for soft in (SoftDecoding(1e-4, 3, 0.02), SoftDecoding(1.0, 1, 0.02)):
        assert soft_ngram_counts(np.log(probs), blank, symbols, soft, lambda g: g, 2, 3) == pytest.approx(
            dict(__import__("collections").Counter(phoneme_ngrams("kæt", 2, 3))))


def test_a_blank_stretch_where_a_symbol_peaks_becomes_an_optional_slot():
    from seal_rag.phonetic import SoftDecoding, soft_ngram_counts

    symbols, blank = " ktæ", 4
    probs = np.full((3, 5), 1e-9)
    probs[0, 1] = probs[2, 3] = 1.0  # "k", then "æ"
    probs[1, 4], probs[1, 2] = 0.6, 0.4  # a blank step where "t" reached 0.4: the 1-best dropped it
    logits = np.log(probs)
    counts = soft_ngram_counts(logits, blank, symbols, SoftDecoding(1.0, 2, 0.02, 0.3), lambda g: g, 2, 3)
    assert counts["kt"] == pytest.approx(0.4) and counts["kæ"] == pytest.approx(0.6) and counts["tæ"] == pytest.approx(0.4)
    assert counts[" kt"] == pytest.approx(0.4) and counts["ktæ"] == pytest.approx(0.4) and counts[" kæ"] == pytest.approx(0.6)
    # Below the threshold, or with a word gap that the 1-best heard: no slot, and no n-gram crosses a gap.
    assert "kt" not in soft_ngram_counts(logits, blank, symbols, SoftDecoding(1.0, 2, 0.02, 0.5), lambda g: g, 2, 3)
    probs[1, 2], probs[1, 0] = 1e-9, 0.4
    gapped = soft_ngram_counts(np.log(probs), blank, symbols, SoftDecoding(1.0, 2, 0.02, 0.3), lambda g: g, 2, 3)
    assert gapped["k "] == pytest.approx(0.4) and gapped[" æ"] == pytest.approx(0.4) and gapped["kæ"] == pytest.approx(0.6)
    assert not [g for g in gapped if " " in g.strip()]


@pytest.mark.slow
def test_soft_decoding_on_real_speech_is_greedy_in_the_limit_and_keeps_its_ranking(embedding, fixtures_dir):
    import json

    from seal_rag.audio import load_audio
    from seal_rag.phonetic import SoftDecoding

    rows = [json.loads(line) for line in (fixtures_dir / "transcripts.jsonl").open()]
    chosen = [r for r in rows if r["audio"].startswith(("jfk", "cmu_arctic", "sense_and"))][:6]
    half = embedding.phonetic
    states = embedding.speech.encode_clips([load_audio(fixtures_dir / r["audio"]) for r in chosen])
    logits = half.logits(states)
    greedy = half.vectors_from_logits(logits)
    np.testing.assert_array_equal(greedy, half.vectorizer.vectors(half.heard(states)))  # the greedy path, unchanged
    # In the limit (temperature towards 0, or one alternative a slot) the soft vector is the greedy one.
    np.testing.assert_allclose(half.vectors_from_logits(logits, SoftDecoding(1e-4, 3, 0.02)), greedy, atol=1e-6)
    np.testing.assert_allclose(half.vectors_from_logits(logits, SoftDecoding(2.0, 1, 0.02)), greedy, atol=1e-6)
    # At the settings used, alternatives add mass (the vector moves) but each clean clip still ranks
    # its own transcript first among the others, as greedy does.
    soft = half.vectors_from_logits(logits, half.soft or SoftDecoding())
    assert (np.abs(soft - greedy).max(axis=1) > 1e-3).all()
    passages = half.embed_texts([r["transcript"] for r in chosen])
    assert list((greedy @ passages.T).argmax(axis=1)) == list(range(len(chosen)))
    assert list((soft @ passages.T).argmax(axis=1)) == list(range(len(chosen)))
    assert list((soft @ greedy.T).argmax(axis=1)) == list(range(len(chosen)))  # nearest its own greedy reading


@pytest.mark.slow
def test_old_model_directories_stay_greedy_and_soft_decoding_keeps_the_index_space(embedding, tmp_path):
    import json
    import warnings

    from seal_rag import SpeechEmbedding
    from seal_rag.config import DEFAULT_MODEL, MODELS_DIR
    from seal_rag.embedding import directory_fingerprint

    shipped = MODELS_DIR / DEFAULT_MODEL
    config = json.loads((shipped / "config.json").read_text())
    assert config["phonetic_decoding"] == "soft" and embedding.phonetic.soft is not None
    old = tmp_path / "old"
    old.mkdir()
    (old / "config.json").write_text(json.dumps({k: v for k, v in config.items()
                                                 if not k.startswith(("phonetic_decoding", "phonetic_t", "phonetic_min"))}))
    (old / "model.safetensors").symlink_to(shipped / "model.safetensors")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        greedy = SpeechEmbedding.from_pretrained(old)
    assert greedy.phonetic.soft is None  # a directory without the field decodes as before
    # The query side changed, so the model's identity did; the text side did not, so an index made
    # by either serves both.
    assert directory_fingerprint(old) == greedy.fingerprint != embedding.fingerprint == directory_fingerprint(shipped)
    assert greedy.space_fingerprint == embedding.space_fingerprint
    np.testing.assert_array_equal(greedy.embed_texts(["Oxygen is a chemical element."]),
                                  embedding.embed_texts(["Oxygen is a chemical element."]))


def test_count_vectors_match_the_scalar_formula_bit_for_bit():
    """Whole counts weigh 1 + log n, fractional ones n, times the IDF, in float32; then unit norm."""
    import math

    rng = np.random.default_rng(0)
    vectorizer = PhoneticVectorizer((rng.random(64) * 4 + 1).astype(np.float32))
    counts = [{3: 1.0, 10: 2.0, 63: 7.0}, {0: 0.25, 5: 1.5, 6: 0.999}, {}]
    expected = np.zeros((3, 64), np.float32)
    for row, bucket_counts in enumerate(counts):
        for k, n in bucket_counts.items():
            expected[row, k] = (1 + math.log(n) if n >= 1 else n) * vectorizer.idf[k]
    expected /= np.maximum(np.linalg.norm(expected, axis=1, keepdims=True), 1e-9)
    assert np.array_equal(vectorizer.count_vectors(counts), expected)
    assert not vectorizer.count_vectors(counts)[2].any()  # nothing heard: a zero vector, not NaN


def test_bucket_of_a_gram_is_its_crc32_on_every_call():
    import zlib

    vectorizer = PhoneticVectorizer(np.ones(8192, np.float32))
    for gram in (" kæ", "æt ", " kæt", "æt"):
        assert vectorizer.bucket(gram) == vectorizer.bucket(gram) == zlib.crc32(gram.encode()) % 8192


def test_an_ensemble_averages_its_members_log_probabilities_step_by_step():
    from seal_rag.phonetic import RecognizerEnsemble

    torch.manual_seed(0)
    members = [PhonemeRecognizer().eval() for _ in range(2)]
    ensemble = RecognizerEnsemble(members).eval()
    states, lengths = torch.randn(2, 40, 512), torch.tensor([40, 31])
    with torch.no_grad():
        (a, steps), (b, _) = members[0](states, lengths), members[1](states, lengths)
        mean, ensemble_steps = ensemble(states, lengths)
    assert torch.equal(ensemble_steps, steps) and ensemble.blank == members[0].blank
    torch.testing.assert_close(mean, (a.log_softmax(-1) + b.log_softmax(-1)) / 2)
    # Not either member's output: two members initialised apart disagree somewhere.
    assert not torch.equal(mean.argmax(-1), a.argmax(-1)) or not torch.equal(mean.argmax(-1), b.argmax(-1))
    # Members that agree give one member's decoding.
    twins = RecognizerEnsemble([members[0], members[0]]).eval()
    with torch.no_grad():
        assert twins.decode(*twins(states, lengths)) == members[0].decode(a, steps)


def test_the_number_of_recognizers_is_checked_on_load():
    assert SealConfig(phonetic_dim=256, phonetic_weight=0.5, phonetic_recognizers=2).phonetic_recognizers == 2
    for count in (0, 9):
        with pytest.raises(ModelLoadError, match="phonetic_recognizers must be 1 to 8"):
            SealConfig(phonetic_dim=256, phonetic_weight=0.5, phonetic_recognizers=count)


@pytest.mark.slow
def test_a_model_of_two_identical_recognizers_serves_as_the_model_of_one(embedding, tmp_path, fixtures_dir):
    """The served path (int8 encoder, soft counts, knowledge-base decoding) reads an ensemble's
    averaged log-probabilities; members that agree must give the one recognizer's vectors."""
    import json
    import warnings

    from safetensors.torch import load_file, save_file

    from seal_rag import SpeechEmbedding
    from seal_rag.audio import load_audio
    from seal_rag.config import DEFAULT_MODEL, MODELS_DIR
    from seal_rag.embedding import directory_fingerprint

    shipped = MODELS_DIR / DEFAULT_MODEL
    pair = tmp_path / "pair"
    pair.mkdir()
    config = json.loads((shipped / "config.json").read_text()) | {"phonetic_recognizers": 2}
    (pair / "config.json").write_text(json.dumps(config))
    weights = load_file(shipped / "model.safetensors")
    one = {k: v for k, v in weights.items() if k.startswith("phonetic.recognizer.")}
    weights = {k: v for k, v in weights.items() if k not in one}
    for i in range(2):
        weights |= {k.replace("phonetic.recognizer.", f"phonetic.recognizer.members.{i}."): v.clone() for k, v in one.items()}
    save_file(weights, pair / "model.safetensors")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = SpeechEmbedding.from_pretrained(pair)
    assert len(model.phonetic.recognizer.members) == 2
    assert directory_fingerprint(pair) == model.fingerprint != embedding.fingerprint
    assert model.space_fingerprint == embedding.space_fingerprint  # passages are spelled as before: the index serves both
    clips = [load_audio(fixtures_dir / name) for name in ("jfk.flac", "cmu_arctic_us_aew_a0001.flac")]
    np.testing.assert_allclose(model.embed_audio(clips), embedding.embed_audio(clips), atol=1e-5)
    (_, ours), (_, theirs) = model.encode_clips(clips), embedding.encode_clips(clips)
    for a, b in zip(ours, theirs):  # log-probabilities against logits: the same distribution at each step
        np.testing.assert_allclose(torch.from_numpy(a).log_softmax(-1), torch.from_numpy(b).log_softmax(-1), atol=1e-4)
    # A file that holds one recognizer where the config says two is refused in one line.
    (pair / "config.json").write_text(json.dumps(config | {"phonetic_recognizers": 3}))
    with pytest.raises(ModelLoadError, match="does not match its config"):
        SpeechEmbedding.from_pretrained(pair)


@pytest.mark.slow
def test_the_bf16_recognizer_stays_within_its_stated_tolerance_and_follows_tuned_weights(embedding, fixtures_dir):
    """Queries read a bf16 copy of the recognizer where the CPU computes bf16 (forced here, so the
    check runs on any CPU): its log-probabilities stay within the tolerance its docstring states,
    and a change to the recognizer's weights (as `seal-rag adapt` makes) reaches the copy."""
    import copy
    import json

    from seal_rag.audio import load_audio

    rows = [json.loads(line) for line in (fixtures_dir / "transcripts.jsonl").open()]
    clips = [load_audio(fixtures_dir / r["audio"]) for r in rows[:6]]
    states = embedding.speech.encode_clips(clips)
    half = copy.deepcopy(embedding.phonetic)
    half.bf16 = False
    exact = half.logits(states)
    half.bf16 = True
    assert next(half.query_recognizer().parameters()).dtype == torch.bfloat16
    assert next(half.recognizer.parameters()).dtype == torch.float32  # the model's own weights stay fp32
    close = half.logits(states)
    for a, b in zip(exact, close):
        p, q = torch.from_numpy(a).log_softmax(-1), torch.from_numpy(b).log_softmax(-1)
        assert float((p.exp() * (p - q)).sum(-1).mean()) < 1e-4
        assert float((p.argmax(-1) == q.argmax(-1)).float().mean()) > 0.98
    with torch.no_grad():
        half.recognizer.classes.bias.add_(5.0 * (torch.arange(len(PHONEMES) + 1) == PHONEMES.index("z")))
    tuned = half.logits(states)
    assert not np.allclose(tuned[0], close[0], atol=1e-2)  # the copy was made again from the new weights
    half.bf16 = False
    np.testing.assert_allclose(tuned[0], half.logits(states)[0], atol=0.25)

import copy
import json
import shutil

import numpy as np
import torch
import pytest
import soundfile as sf

from seal_rag import ModelLoadError, NotAudioError, SealConfig, SilentAudioError, SpeechEmbedding, UntrainedModelWarning
from seal_rag.audio import load_audio


def test_audio_and_text_land_in_one_space_as_unit_float32(embedding, jfk):
    speech = embedding.embed_audio([jfk])
    text = embedding.embed_texts(["ask not what your country can do for you", "a second passage"])
    for vectors, rows in ((speech, 1), (text, 2)):
        assert vectors.dtype == np.float32 and vectors.shape == (rows, embedding.dim)
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_file_array_and_bytes_of_one_clip_agree(embedding, jfk):
    samples, rate = sf.read(jfk, dtype="float32")
    vectors = embedding.embed_audio([jfk, str(jfk), jfk.read_bytes()])
    from_array = embedding.embed_audio(samples, sample_rate=rate)
    np.testing.assert_allclose(vectors, np.repeat(vectors[:1], 3, axis=0), atol=1e-6)
    np.testing.assert_allclose(from_array[0], vectors[0], atol=1e-4)


def test_a_batch_equals_one_by_one(embedding, fixtures_dir):
    clips = sorted(fixtures_dir.glob("*.flac"))[:6]  # lengths from 1.8 s to 11 s
    batch = embedding.embed_audio(clips)
    single = np.concatenate([embedding.embed_audio(c) for c in clips])
    assert np.abs(batch - single).max() < 1e-4


def test_long_query_is_windowed_and_pooled(embedding, fixtures_dir):
    clips = [load_audio(p) for p in sorted(fixtures_dir.glob("*.flac"))]
    long_query = np.concatenate(clips)[: 16000 * 45]  # 45 s: two windows
    first_30s = long_query[: 16000 * 30]
    whole, cut = embedding.embed_audio([long_query, first_30s])
    assert np.abs(whole - cut).max() > 1e-3  # the last 15 s counted


def test_save_then_load_gives_the_same_vectors(embedding, jfk, tmp_path):
    embedding.save_pretrained(tmp_path / "model")
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == ["config.json", "model.safetensors"]
    reloaded = SpeechEmbedding.from_pretrained(tmp_path / "model")
    np.testing.assert_allclose(reloaded.embed_audio(jfk), embedding.embed_audio(jfk), atol=1e-6)
    np.testing.assert_allclose(reloaded.embed_texts("a sentence"), embedding.embed_texts("a sentence"), atol=1e-6)
    assert reloaded.fingerprint == embedding.fingerprint


def test_saved_weights_hold_only_the_trainable_parts(embedding, tmp_path):
    from safetensors.torch import load_file

    embedding.save_pretrained(tmp_path)
    names = load_file(tmp_path / "model.safetensors").keys()
    assert names and all(n.startswith(("scaling.", "speech.head.", "phonetic.")) for n in names)


def test_mismatched_weights_are_reported_plainly(embedding, tmp_path):
    embedding.save_pretrained(tmp_path)
    config = SealConfig.load(tmp_path / "config.json")
    config.mlp_hidden = config.adapter_dim  # a width the file holds, in the wrong place
    config.save(tmp_path / "config.json")
    with pytest.raises(ModelLoadError, match="does not match its config.*wrong shapes.*mlp"):
        SpeechEmbedding.from_pretrained(tmp_path)
    with pytest.raises(ModelLoadError, match="not a seal-rag model directory"):
        SpeechEmbedding.from_pretrained(tmp_path / "nowhere")


@pytest.mark.parametrize("field, value", [("mlp_hidden", 1_000_000), ("context_layers", 1_000_000), ("phonetic_dim", 8193)])
def test_a_size_the_weights_cannot_hold_is_refused_before_the_model_is_built(embedding, tmp_path, monkeypatch, field, value):
    embedding.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps(config | {field: value}))
    monkeypatch.setattr(SpeechEmbedding, "__init__", lambda *a, **k: pytest.fail("built before the sizes were checked"))
    with pytest.raises(ModelLoadError, match=f"does not fit model.safetensors \\({field} {value}\\)"):
        SpeechEmbedding.from_pretrained(tmp_path)


@pytest.mark.parametrize("text", ['{"phonetic_temperature": Infinity}', '{"max_seconds": NaN}', '{"dim": -1}', '{"pooling": 3}'])
def test_a_setting_out_of_range_is_refused_when_the_config_is_read(tmp_path, text):
    (tmp_path / "config.json").write_text(text)
    with pytest.raises(ModelLoadError, match="wrong type or range"):
        SealConfig.load(tmp_path / "config.json")


def test_a_base_model_path_in_config_is_read_beside_the_model_from_any_folder(embedding, tmp_path, monkeypatch):
    from seal_rag.model_sources import text_model_path

    model = tmp_path / "model"
    embedding.save_pretrained(model)
    shutil.copytree(text_model_path("all-MiniLM-L6-v2")[0], model / "minilm")
    config = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps(config | {"text_model": "minilm"}))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # a Hub lookup would fail here, not wait for the network
    loaded = SpeechEmbedding.from_pretrained(model)
    assert np.allclose(loaded.embed_texts(["lung cancer"]), embedding.embed_texts(["lung cancer"]), atol=1e-6)


def test_bad_audio_surfaces_the_project_errors(embedding, tmp_path):
    with pytest.raises(NotAudioError):
        embedding.embed_audio(b"definitely not audio")
    with pytest.raises(SilentAudioError):
        embedding.embed_audio(np.zeros(16000, dtype=np.float32))


def test_an_untrained_model_warns_loudly():
    with pytest.warns(UntrainedModelWarning, match="UNTRAINED"):
        model = SpeechEmbedding.untrained()
    assert model.trained is False


def test_tuned_reader_layers_are_the_speech_sides_own_and_round_trip(jfk, tmp_path):
    import torch

    with pytest.warns(UntrainedModelWarning):
        model = SpeechEmbedding.untrained(SealConfig(adapter_dim=64, mlp_hidden=128, token_level=True, tuned_reader_layers=1))
    text_before = model.embed_texts("a passage about oxygen")
    speech_before = model.embed_audio(jfk)
    with torch.no_grad():  # what training the speech side's copy does
        model.speech.head.reader.tuned[0].output.dense.weight.mul_(0.5)
    np.testing.assert_allclose(model.embed_texts("a passage about oxygen"), text_before, atol=1e-6)  # the index stays put
    assert np.abs(model.embed_audio(jfk) - speech_before).max() > 1e-3  # the speech side reads through it
    model.save_pretrained(tmp_path)
    reloaded = SpeechEmbedding.from_pretrained(tmp_path)
    np.testing.assert_allclose(reloaded.embed_audio(jfk), model.embed_audio(jfk), atol=1e-6)
    assert any(".reader.tuned.0." in name for name in reloaded.trainable_state_dict())
    with pytest.raises(ModelLoadError, match="tuned_reader_layers needs token_level"):
        SealConfig(tuned_reader_layers=2)


def test_spoken_queries_use_the_int8_encoder_and_rank_as_the_torch_one(embedding, demo_db):
    """CTranslate2's int8 encoder hears queries (3x faster); a demo question finds the same passage as with fp32 torch."""
    from seal_rag.store import SealIndex

    from .conftest import DEMOS

    assert embedding.query_encoder == "int8"
    clip = load_audio(DEMOS / "questions" / "q1.wav")
    int8 = embedding.embed_clips([clip])[0]
    embedding.query_encoder = "torch"
    try:
        fp32 = embedding.embed_clips([clip])[0]
    finally:
        embedding.query_encoder = "int8"
    # CTranslate2's int8 kernels differ by CPU: 0.966 on an AMD EPYC (Zen 4), above 0.97 on Intel with AMX.
    assert float(int8 @ fp32) > 0.95
    index = SealIndex.open(embedding, demo_db)
    firsts = [index.query(vector, 1)[0].metadata["source"] for vector in (int8, fp32)]
    assert firsts[0] == firsts[1] and firsts[0].endswith("Steam_engine_0.txt")


def test_a_model_that_has_heard_a_question_can_be_copied_and_the_copy_hears_alike(embedding, jfk):
    import copy

    heard = embedding.embed_audio(jfk)  # loads the int8 query encoder where the model uses it
    twin = copy.deepcopy(embedding)  # what `seal-rag adapt` does before tuning
    np.testing.assert_allclose(twin.embed_audio(jfk), heard, atol=1e-5)


def test_bf16_text_tower_stays_within_its_stated_tolerance_of_fp32(embedding):
    """Where the CPU has bf16 matrix units the sentence model runs as a bf16 copy; its
    vectors must stay within cosine 0.9999 of fp32 (the tolerance that keeps the space's fingerprint)."""
    from seal_rag.text_tower import hardware_bf16

    from .conftest import DEMOS

    if not hardware_bf16():
        pytest.skip("this CPU has no bf16 matrix units: the text tower runs fp32 here")
    texts = [p.read_text() for p in sorted(DEMOS.glob("kb/*.txt"))[:12]] + ["Who led the Apollo program?"]
    tower = embedding.text
    assert tower.bf16
    made = embedding.embed_texts(texts)
    tower.bf16 = False
    try:
        plain = embedding.embed_texts(texts)
    finally:
        tower.bf16 = True
    cosines = np.sum(made * plain, axis=1)
    assert cosines.min() >= 0.9999 and not np.array_equal(made, plain), cosines.min()
    with torch.no_grad():
        semantic = [tower.project(tower.encode_base(texts)).numpy()]
    tower.bf16 = False
    try:
        with torch.no_grad():
            semantic.append(tower.project(tower.encode_base(texts)).numpy())
    finally:
        tower.bf16 = True
    # The semantic half alone, where the joined vector's phonetic share cannot hide a drift.
    assert np.sum(semantic[0] * semantic[1], axis=1).min() >= 0.9999


@pytest.mark.parametrize("part", ["text tower", "recognizer"])
def test_a_bf16_copy_is_made_once_whichever_threads_ask_first(embedding, monkeypatch, part):
    """The service embeds questions from several threads; the first ones must not each build
    (and hold) their own bf16 copy of the sentence model or of the phoneme recognizer."""
    import threading
    import time

    from seal_rag import phonetic, text_tower

    module, name = (text_tower, "bf16_twin") if part == "text tower" else (phonetic, "bf16_recognizer")
    made = []
    real = getattr(module, name)

    def slow_copy(model):
        made.append(1)
        time.sleep(0.2)  # widen the window in which other threads could start a second one
        return real(model)

    monkeypatch.setattr(module, name, slow_copy)
    if part == "text tower":
        owner = copy.deepcopy(embedding.text)
        owner.__dict__.pop("_bf16", None)
        ask = lambda: owner.encode_base(["a question"])  # noqa: E731
    else:
        owner = copy.deepcopy(embedding.phonetic)
        owner.__dict__.pop("_bf16", None)
        ask = owner.query_recognizer
    owner.bf16 = True
    threads = [threading.Thread(target=ask) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(made) == 1


def test_a_sentence_model_without_a_transformer_module_has_no_bf16_twin():
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.models import Pooling

    from seal_rag.text_tower import bf16_twin

    assert bf16_twin(SentenceTransformer(modules=[Pooling(8)], device="cpu")) is None

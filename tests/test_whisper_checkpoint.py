import copy

import ctranslate2
import numpy as np
import torch

from seal_rag.audio import load_audio, log_mel
from seal_rag.whisper_checkpoint import read_ct2_model
from seal_rag.model_sources import packaged_whisper_ct2_dir
from seal_rag.whisper_torch import load_whisper_encoder


def test_joined_model_bin_parses_as_whisper_base():
    variables = read_ct2_model(packaged_whisper_ct2_dir() / "model.bin", prefix="encoder/")
    assert variables["encoder/conv1/weight"].shape == (512, 80, 3)
    assert variables["encoder/position_encodings/encodings"].shape == (1500, 512)
    assert variables["encoder/layer_5/self_attention/linear_0/weight"].dtype == np.float16


def test_cache_left_by_a_deleted_environment_is_repaired(tmp_path, monkeypatch):
    # A cache made from another virtual environment's packages, since deleted: its small files
    # were links into that environment. Opening the packaged model must replace them, not fail.
    monkeypatch.setenv("SEAL_RAG_CACHE", str(tmp_path))
    stale = tmp_path / "whisper-base-ct2"
    stale.mkdir()
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        (stale / name).symlink_to(tmp_path / "gone-venv" / name)
    directory = packaged_whisper_ct2_dir()
    assert directory == stale
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        assert not (directory / name).is_symlink() and (directory / name).stat().st_size > 0
    assert not list(directory.glob("*.tmp"))
    ctranslate2.models.Whisper(str(directory), device="cpu", compute_type="int8")  # it opens


def test_converted_encoder_matches_ctranslate2(jfk):
    mel = log_mel(load_audio(jfk)[: 16000 * 6])  # (80, 600): real length, as the tower uses it
    padded = log_mel(load_audio(jfk), pad_to_window=True)  # (80, 3000): as Whisper uses it
    encoder = load_whisper_encoder("whisper-base")
    reference = ctranslate2.models.Whisper(str(packaged_whisper_ct2_dir()), device="cpu", compute_type="float32")
    exact = copy.deepcopy(encoder).double()
    for features in (mel, padded):
        expected = np.array(reference.encode(ctranslate2.StorageView.from_array(features[None].numpy().copy()), to_cpu=True))
        with torch.no_grad():
            ours, lengths = encoder(features[None], torch.tensor([features.shape[1]]))
            ours_exact, _ = exact(features[None].double(), torch.tensor([features.shape[1]]))
        assert ours.shape == expected.shape and lengths.item() == features.shape[1] // 2
        # The mapping is checked in float64 on our side, so only CTranslate2's own float32
        # rounding remains (6.4e-4 at most on an AVX-512 Xeon, where our float32 run adds its
        # own and lands at 1.05e-3 on outputs up to 24).
        assert np.abs(ours_exact.numpy() - expected).max() < 1e-3
        assert np.abs(ours.numpy() - expected).max() < 2e-3  # the float32 path the tower runs


def test_int8_encoder_gives_the_torch_encoders_states_at_real_length(jfk):
    from seal_rag.config import SealConfig
    from seal_rag.whisper_int8 import Ct2WhisperEncoder, can_encode_with_ct2

    clip = load_audio(jfk)[: 16000 * 6 + 123]  # an odd number of mel frames
    int8 = Ct2WhisperEncoder(threads=1)(clip)
    mel = log_mel(clip)
    with torch.no_grad():
        ours, _ = load_whisper_encoder("whisper-base")(mel[None], torch.tensor([mel.shape[1]]))
    ours = ours[0].numpy()
    assert int8.shape == (mel.shape[1] // 2, 512) and abs(ours.shape[0] - int8.shape[0]) <= 1
    n = min(len(ours), len(int8))
    cosine = (ours[:n] * int8[:n]).sum(-1) / np.linalg.norm(ours[:n], axis=-1) / np.linalg.norm(int8[:n], axis=-1)
    assert cosine.mean() > 0.99  # int8 rounding only: a wrong window or frame count falls far below
    assert can_encode_with_ct2(SealConfig()) and not can_encode_with_ct2(SealConfig(trainable_encoder_layers=2))
    assert not can_encode_with_ct2(SealConfig(whisper_model="openai/whisper-small"))


def test_a_damaged_cached_encoder_is_made_again(tmp_path, monkeypatch):
    monkeypatch.setenv("SEAL_RAG_CACHE", str(tmp_path))
    from seal_rag.whisper_torch import _packaged_base_state

    good = _packaged_base_state()
    cached = tmp_path / "whisper-base-encoder.safetensors"
    cached.write_bytes(cached.read_bytes()[:1000])  # a copy stopped short
    again = _packaged_base_state()
    assert again.keys() == good.keys() and all(torch.equal(again[k], good[k]) for k in good)
    assert _packaged_base_state().keys() == good.keys()  # and the cache holds it whole again
    assert cached.stat().st_size > 1000


def test_a_cache_folder_that_is_a_file_is_one_error_naming_the_setting(tmp_path, monkeypatch):
    import pytest

    from seal_rag.errors import ModelLoadError
    from seal_rag.model_sources import cache_dir

    blocker = tmp_path / "cache"
    blocker.write_text("not a folder")
    monkeypatch.setenv("SEAL_RAG_CACHE", str(blocker))
    with pytest.raises(ModelLoadError, match="SEAL_RAG_CACHE"):
        cache_dir()

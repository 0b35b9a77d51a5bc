import copy

import ctranslate2
import numpy as np
import torch

from seal_rag.audio import load_audio, log_mel
from seal_rag.ct2_whisper import read_ct2_model
from seal_rag.model_sources import packaged_whisper_ct2_dir
from seal_rag.whisper_encoder import load_whisper_encoder


def test_joined_model_bin_parses_as_whisper_base():
    variables = read_ct2_model(packaged_whisper_ct2_dir() / "model.bin", prefix="encoder/")
    assert variables["encoder/conv1/weight"].shape == (512, 80, 3)
    assert variables["encoder/position_encodings/encodings"].shape == (1500, 512)
    assert variables["encoder/layer_5/self_attention/linear_0/weight"].dtype == np.float16


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

import numpy as np
import pytest

from seal_rag.audio import load_audio
from seal_rag.cascade import CascadeEmbedding, Transcriber


@pytest.fixture(scope="module")
def cascade(embedding):
    return CascadeEmbedding(embedding, Transcriber(beam_size=1))


def test_cascade_transcribes_real_speech(cascade, jfk):
    (text,) = cascade.transcribe(jfk)
    assert "fellow americans" in text.lower() and "your country" in text.lower()


def test_cascade_vectors_are_the_text_towers_vectors_of_the_transcript(cascade, embedding, fixtures_dir):
    clip = fixtures_dir / "brooklyn_bridge_audio.flac"
    (transcript,) = cascade.transcribe(clip)
    assert "brooklyn bridge" in transcript.lower()
    np.testing.assert_allclose(cascade.embed_audio(clip), embedding.embed_texts([transcript]), atol=1e-5)


def test_fitted_window_still_transcribes(jfk):
    fitted = Transcriber(beam_size=1, fit_window=True)
    assert "fellow americans" in fitted.transcribe(load_audio(jfk)).lower()

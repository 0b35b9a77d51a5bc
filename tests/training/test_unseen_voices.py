"""training.unseen_voices: which voices may speak a model's held-out questions."""

import pytest

from seal_rag.voices import HELD_OUT_VOICES
from training.unseen_voices import held_out_speakers

FLITE_HELD_OUT = {"espeak": "train", "flite": "bench", "piper": "val"}
FLITE_HEARD = {"espeak": "train", "flite": "train", "piper": "val"}


def test_text_sets_are_spoken_by_the_one_family_held_out_and_human_sets_suit_any_model():
    assert held_out_speakers(["covidqa"], ["flite"], FLITE_HELD_OUT) == HELD_OUT_VOICES["flite"]
    with pytest.raises(ValueError, match="held out of training"):
        held_out_speakers(["covidqa", "ljspeech-385"], ["flite"], FLITE_HEARD)
    with pytest.raises(ValueError, match="held out of training"):
        held_out_speakers(["covidqa"], ["flite", "piper"], FLITE_HELD_OUT)
    assert held_out_speakers(["ljspeech-385", "commonvoice-100"], ["flite"], FLITE_HEARD) == []
    # --prepare may speak flite's clips before the model that holds flite out exists.
    assert held_out_speakers(["covidqa"], ["flite"], FLITE_HEARD, prepare=True) == HELD_OUT_VOICES["flite"]


def test_a_missing_data_folder_is_one_line_not_a_traceback(tmp_path, capsys):
    from training.unseen_voices import main

    with pytest.raises(SystemExit) as stopped:
        main(["--sets", "covidqa", "--families", "flite", "--data", str(tmp_path / "nowhere")])
    assert stopped.value.code == 2 and "data" in capsys.readouterr().err.splitlines()[-1]


def test_a_family_the_speech_towers_semantic_half_heard_is_scored_without_it(embedding):
    """On such a family (flite, for a recognizer that never heard it in a model that spells its served
    semantic half), no score reads the speech tower's semantic half: the same with any values there."""
    import numpy as np

    from seal_rag.audio import load_audio
    from seal_rag.kb_decoding import DecodingSettings
    from seal_rag.keyword_rerank import KeywordReranker
    from seal_rag.phonetic import SoftDecoding
    from training.unseen_voices import score_systems

    from ..conftest import DEMOS

    texts = [p.read_text() for p in sorted((DEMOS / "kb").glob("*.txt"))]
    passages = {"semantic": embedding.text_semantic(texts), "phonetic": embedding.phonetic.embed_texts(texts)}
    semantic, logits = [], []
    for clip in [load_audio(path) for path in sorted((DEMOS / "questions").glob("*.wav"))[:3]]:
        states = embedding.encode_queries([clip])
        semantic.append(embedding.embed_states(states)[0, : embedding.config.dim] / np.sqrt(1 - embedding.config.phonetic_weight))
        logits.append(embedding.phonetic.logits(states)[0])
    semantic = np.stack(semantic)
    reranker = KeywordReranker.from_texts(texts, decoding=DecodingSettings())
    args = (logits, None, ["a question"] * 3, SoftDecoding(), reranker, texts)
    served = "seal + KB decoding + keywords (as served)"
    heard = score_systems(embedding, passages, semantic, *args)
    unheard = [score_systems(embedding, passages, s, *args, speech_semantic=False)
               for s in (semantic, np.random.default_rng(0).normal(size=semantic.shape).astype(np.float32))]
    assert {"seal/semantic half", "seal + keywords", "seal (soft posteriors)"} <= heard.keys()
    assert set(unheard[0]) == set(heard) - {"seal/semantic half", "seal + keywords", "seal (soft posteriors)",
                                            "seal (greedy 1-best, control)"}
    for name in unheard[0]:
        np.testing.assert_array_equal(unheard[0][name], unheard[1][name])
    np.testing.assert_allclose(unheard[0][served], heard[served], atol=1e-6)  # every question spelled some word


@pytest.mark.parametrize("argv, expected", [
    (["--keywords", "foo"], "--keywords foo: give NAME=VALUE with NAME one of depth, tolerance"),
    (["--keywords", "nosuch=1"], "--keywords nosuch=1: give NAME=VALUE with NAME one of depth"),
    (["--keywords", "depth=2.5"], "--keywords depth=2.5: depth takes a whole number"),
    (["--threads", "0"], "argument --threads: 0 is not a whole number above 0"),
])
def test_a_bad_argument_is_a_usage_error_not_a_traceback(capsys, argv, expected):
    from training.unseen_voices import main

    with pytest.raises(SystemExit) as stopped:
        main(["--latency", "1", *argv])
    assert stopped.value.code == 2 and expected in capsys.readouterr().err.splitlines()[-1]


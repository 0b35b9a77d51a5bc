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

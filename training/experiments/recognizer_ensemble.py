"""Issue 32: two phoneme recognizers heard together, on validation only.

Each recognizer gives per-step log-probabilities over the same phonemes at the same rate (25 a
second, from the same Whisper states), so their mean is one recognizer's output: greedy CTC
decodes it as it decodes either. Two recognizers trained on different clips make different
errors; where one is unsure the other may not be. The cost at query time is a second recognizer
(two transformer layers) on states the encoder already computed; passages are spelled by
espeak-ng and do not change.

Scored as `training.phonetic` validates a recognizer: the cache's validation clips, phoneme error
rate and phonetic retrieval among the 1,551 validation paragraphs (greedy 1-best), each run's
best step alone and both together.

    python -m training.experiments.recognizer_ensemble --config training/experiments/configs/phonetic_espeak_piper_60k.toml \
        --runs ~/.cache/seal_rag/training/espeak_piper/phonetic ~/.cache/seal_rag/training/espeak_piper/phonetic_60k
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from seal_rag.phonetic import PhonemeRecognizer

from ..config import load_config
from ..phonetic import PhoneticValidation, fit_idf


class Ensemble(torch.nn.Module):
    """Recognizers whose log-probabilities are averaged step by step."""

    def __init__(self, recognizers: list[PhonemeRecognizer]):
        super().__init__()
        self.recognizers = torch.nn.ModuleList(recognizers)
        self.decode = recognizers[0].decode  # same symbols and blank

    def forward(self, states: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        outputs = [r(states, lengths) for r in self.recognizers]
        return torch.stack([logits.log_softmax(-1) for logits, _ in outputs]).mean(0), outputs[0][1]


def best_recognizer(run: Path) -> PhonemeRecognizer:
    recognizer = PhonemeRecognizer()
    recognizer.load_state_dict(torch.load(run / "best.pt")["model"])
    return recognizer.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, required=True, help="a run's config: its final states and IDF are read")
    parser.add_argument("--runs", type=Path, nargs="+", required=True, help="out_dirs of recognizer runs (best.pt)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    out_dir = Path(load_config(args.config)["phonetic"]["out_dir"]).expanduser()
    validation = PhoneticValidation(out_dir / "final_states")
    vectorizer = fit_idf(out_dir, load_config(args.config)["phonetic"]["hash_dim"])
    recognizers = [best_recognizer(run.expanduser()) for run in args.runs]
    for name, model in [*zip(map(str, args.runs), recognizers), ("together", Ensemble(recognizers))]:
        figures = validation(model, vectorizer)
        print(f"{name}: " + " ".join(f"{k} {v:.4f}" for k, v in figures.items()), flush=True)


if __name__ == "__main__":
    main()

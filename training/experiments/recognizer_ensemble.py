"""Issue 32: two phoneme recognizers heard together, on validation only.

Each recognizer gives per-step log-probabilities over the same phonemes at the same rate (25 a
second, from the same Whisper states), so their mean is one recognizer's output: greedy CTC
decodes it as it decodes either (`seal_rag.phonetic.RecognizerEnsemble`, as a released model with
`[phonetic] ensemble` serves it). Two recognizers trained on different clips make different
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

from pathlib import Path

import torch

from seal_rag.phonetic import PhonemeRecognizer, RecognizerEnsemble

from ..config import command_line, load_config, parse_command_line, run_command
from ..phonetic import PhoneticValidation, fit_idf


def best_recognizer(run: Path) -> PhonemeRecognizer:
    path = run / "best.pt"
    if not path.is_file():
        raise SystemExit(f"error: no {path}: pass the out_dir of a finished `training.phonetic` run")
    recognizer = PhonemeRecognizer()
    recognizer.load_state_dict(torch.load(path)["model"])
    return recognizer.eval()


def main() -> None:
    parser = command_line(__doc__)
    parser.add_argument("--runs", type=Path, nargs="+", required=True, help="out_dirs of recognizer runs (best.pt)")
    args = parse_command_line(parser)
    torch.set_num_threads(1)
    section = load_config(args.config)["phonetic"]  # whose final states and IDF are read
    out_dir = Path(section["out_dir"]).expanduser()
    recognizers = [best_recognizer(run.expanduser()) for run in args.runs]
    validation = PhoneticValidation(out_dir / "final_states")
    vectorizer = fit_idf(out_dir, section["hash_dim"])
    for name, model in [*zip(map(str, args.runs), recognizers), ("together", RecognizerEnsemble(recognizers))]:
        figures = validation(model, vectorizer)
        print(f"{name}: " + " ".join(f"{k} {v:.4f}" for k, v in figures.items()), flush=True)


if __name__ == "__main__":
    run_command(main)

"""How the phonetic half's hash size, n-gram range and weight were chosen: a grid on validation.

    python -m training.experiments.phonetic_choice --config training/configs/seal-base-minilm-6-phonetic.toml --model seal_rag/models/seal-base-minilm

For each hash size and n-gram range (IDF refitted on every third allowed training text) and
each weight, it prints Top-1 / MRR of the speech tower (the model's semantic half on the real
path, joined to the phonetic half of `[phonetic] out_dir`'s best recognizer) and of the beam-5
cascade through the same text tower. Validation only: the 400 questions, 1,551 paragraphs.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from seal_rag.phonetic import PhonemeRecognizer, PhoneticVectorizer, phonemize

from ..cache import _training_pools
from ..config import command_line, load_config, parse_command_line
from ..evaluate import Validation, rank_metrics
from ..phonetic import PhoneticValidation
from ..train_common import load_checkpoint

GRID = {"hash_dim": [4096, 8192], "ngrams": [(2, 4), (1, 4), (2, 5), (3, 5)], "weight": [0.7, 0.8, 0.85, 0.9, 1.0]}


def main() -> None:
    parser = command_line(__doc__)
    parser.add_argument("--model", required=True, help="a model directory: its semantic half is joined to each variant")
    args = parse_command_line(parser)
    torch.set_num_threads(2)
    from seal_rag import SpeechEmbedding

    config = load_config(args.config)
    out_dir = Path(config["phonetic"]["out_dir"]).expanduser()
    phonetic = PhoneticValidation(out_dir / "final_states")
    recognizer = PhonemeRecognizer()
    recognizer.load_state_dict(load_checkpoint(out_dir / "best.pt")["model"])
    heard = phonetic.decode(recognizer)

    validation = Validation(config["data"]["cache_dir"])  # the same clips, with their audio and cascade transcripts
    assert [i["index"] for i in validation.clips.items] == [i["index"] for i in phonetic.clips.items]
    model = SpeechEmbedding.from_pretrained(args.model)
    with torch.no_grad():
        speech = torch.cat([model.speech.embed_states(model.speech.encode_clips(validation.clips.audio[i : i + 8]))
                            for i in range(0, len(validation.clips), 8)]).numpy()
        passages = model.text.project(validation.passage_base).numpy()
    semantic = {"seal": speech @ passages.T, "cascade": validation.cascade_base() @ validation.passage_base.numpy().T}
    transcripts = json.loads((validation.cache_dir / "val_cascade_transcripts.json").read_text())
    spoken = {"seal": heard, "cascade": [phonemize(t or " ") for t in transcripts]}

    texts = sorted({u.text for make in _training_pools().values() for u in make()})[::3]
    idf_phonemes = [phonemize(t) for t in texts]
    print(f"{len(heard)} questions; IDF over {len(texts)} texts\n| buckets | n-grams | weight | SEAL Top-1 / MRR | cascade Top-1 / MRR |\n|---|---|---|---|---|")
    for dim in GRID["hash_dim"]:
        for low, high in GRID["ngrams"]:
            vectorizer = PhoneticVectorizer.fit(idf_phonemes, dim, low, high)
            passage_vectors = vectorizer.vectors(phonetic.passage_phonemes)  # spelled out once, by the validation
            phonetic_scores = {k: vectorizer.vectors(v) @ passage_vectors.T for k, v in spoken.items()}
            for w in GRID["weight"]:
                figures = {k: rank_metrics((1 - w) * semantic[k] + w * phonetic_scores[k], validation.gold) for k in semantic}
                print(f"| {dim} | {low}-{high} | {w} | " + " | ".join(f"{figures[k]['top1']:.3f} / {figures[k]['mrr']:.3f}" for k in ("seal", "cascade")) + " |", flush=True)


if __name__ == "__main__":
    main()

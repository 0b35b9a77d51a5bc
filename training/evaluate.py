"""Validation retrieval: spoken SQuAD questions of our validation articles -> their paragraph.

    python -m training.evaluate --config training/configs/base.toml --cascade --oracle
    python -m training.evaluate --config training/configs/base.toml --model seal_rag/models/seal-base-minilm --hybrid

The corpus is every paragraph of SQuAD's 38 training articles (the 4 validation articles'
paragraphs among those of the 34 training ones), so a query must find its paragraph among
~1,600. Queries are `data.val_questions` questions spoken by validation voices only
(`seal_rag.voices`). Nothing here reads a held-out set.
"""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from seal_rag.safe_text import for_terminal

from . import text_sources as ts
from .config import command_line, load_config, parse_command_line, require, run_command
from .data import ClipSet, load_clips


def metrics(queries: np.ndarray, passages: np.ndarray, gold: np.ndarray) -> dict[str, float]:
    """Top-1, Top-10 and MRR of unit `queries` (n, d) against unit `passages` (m, d)."""
    return rank_metrics(torch.as_tensor(queries) @ torch.as_tensor(passages).T, gold)


def rank_metrics(scores, gold: np.ndarray) -> dict[str, float]:
    """Top-1, Top-10 and MRR from a `(queries, passages)` score matrix."""
    scores = torch.as_tensor(scores)
    gold_scores = scores[torch.arange(len(gold)), torch.as_tensor(gold)]
    rank = (scores > gold_scores[:, None]).sum(dim=1)  # 0 = first
    return dict(top1=float((rank < 1).float().mean()), top10=float((rank < 10).float().mean()),
                mrr=float((1.0 / (rank + 1).float()).mean()))


class Validation:
    """The validation clips, the corpus, and the text model's embedding of each passage."""

    def __init__(self, cache_dir: str | Path, corpus: str = "all"):
        self.cache_dir = Path(cache_dir).expanduser()
        self.clips: ClipSet = load_clips(self.cache_dir, "val")
        # "all": every paragraph of the 38 SQuAD training articles; "val": only the 4 validation
        # articles' paragraphs (the smoke test's quick corpus).
        articles = ts.squad_articles("val") if corpus == "val" else ts.squad_articles("train") + ts.squad_articles("val")
        self.passages = ts.squad_passages(articles)
        index = {p.passage_id: i for i, p in enumerate(self.passages)}
        self.gold = np.array([index[item["passage_id"]] for item in self.clips.items])
        self.passage_base = torch.from_numpy(self._cached_base(f"corpus_{corpus}_base.npy", [p.text for p in self.passages]))

    def _cached_base(self, name: str, texts: list[str]) -> np.ndarray:
        path = self.cache_dir / name
        if path.is_file():
            return np.load(path)
        from seal_rag.model_sources import DEFAULT_TEXT_MODEL
        from seal_rag.text_tower import load_sentence_model

        base = load_sentence_model(DEFAULT_TEXT_MODEL).encode(texts, batch_size=32, convert_to_numpy=True).astype(np.float32)
        np.save(path, base)
        return base

    @torch.no_grad()
    def evaluate_head(self, model) -> dict[str, float]:
        """A `training.model.HeadModel` on the cached states (CTranslate2 int8, pooled, or full-rate below the top layers)."""
        queries = self.head_queries(model)
        out = metrics(queries.numpy(), model.project_text(self.passage_base).numpy(), self.gold)
        out["cos"] = float(torch.nn.functional.cosine_similarity(model(*self.clips.batch(range(len(self.clips)))),
                                                                  self.clips.targets).mean())
        return out

    @torch.no_grad()
    def head_queries(self, model) -> torch.Tensor:
        """`(clips, dim)` query vectors of a `training.model.HeadModel` on the cached states, in batches of 64."""
        model.eval()
        return torch.cat([model.embed(*self.clips.batch(range(start, min(start + 64, len(self.clips)))))
                          for start in range(0, len(self.clips), 64)])

    def passage_vectors(self, embedding) -> np.ndarray:
        """The corpus as `embedding`'s text tower stores it: both halves where it has a phonetic one."""
        if embedding.phonetic is None:
            return embedding.text.project(self.passage_base).detach().numpy()
        return embedding.embed_texts([p.text for p in self.passages])

    def half_figures(self, embedding, queries: np.ndarray, passages: np.ndarray, name: str) -> dict[str, dict[str, float]]:
        """Each half of joined vectors scored alone (`name/semantic`, `name/phonetic`); none without a phonetic half."""
        if embedding.phonetic is None:
            return {}
        (query_semantic, query_phonetic), (semantic, phonetic) = embedding.split(queries), embedding.split(passages)
        return {f"{name}/semantic": rank_metrics(query_semantic @ semantic.T, self.gold),
                f"{name}/phonetic": rank_metrics(query_phonetic @ phonetic.T, self.gold)}

    @torch.no_grad()
    def evaluate_embedding(self, embedding, hybrid: bool = False) -> dict[str, dict[str, float]]:
        """A full `SpeechEmbedding` (torch fp32 encoder) on the validation audio: the real path.

        With `hybrid`, also its reciprocal-rank fusion with the beam-5 cascade, as `--mode hybrid` does.
        """
        queries = np.concatenate([embedding.embed_clips(self.clips.audio[i : i + 8]) for i in range(0, len(self.clips), 8)])
        passages = self.passage_vectors(embedding)
        speech_scores = queries @ passages.T
        figures = {"speech": rank_metrics(speech_scores, self.gold), **self.half_figures(embedding, queries, passages, "speech")}
        if embedding.phonetic is not None:
            # The cascade through the same (whole) text tower.
            transcripts = self.cache_dir / "val_cascade_transcripts.json"  # written by evaluate_cascade
            if transcripts.is_file():
                heard = [t or " " for t in json.loads(transcripts.read_text())]
                figures["cascade, same text tower"] = rank_metrics(embedding.embed_texts(heard) @ passages.T, self.gold)
        if hybrid:
            from seal_rag.fusion import fused_scores

            cascade_scores = self.cascade_base() @ self.passage_base.numpy().T
            figures["hybrid"] = rank_metrics(fused_scores(speech_scores, cascade_scores), self.gold)
        return figures

    def evaluate_untrained(self) -> dict[str, float]:
        """The untrained tower (random head, as `SpeechEmbedding.untrained()`), cached on disk."""
        path = self.cache_dir / "val_untrained.json"
        if path.is_file():
            return json.loads(path.read_text())
        from seal_rag import SpeechEmbedding

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            figures = self.evaluate_embedding(SpeechEmbedding.untrained())["speech"]
        path.write_text(json.dumps(figures))
        return figures

    def evaluate_oracle(self) -> dict[str, float]:
        """The text model on the true question: the ceiling for any speech tower."""
        base = self._cached_base("val_questions_base.npy", [i["text"] for i in self.clips.items])
        return metrics(base, self.passage_base.numpy(), self.gold)

    def evaluate_cascade(self) -> dict[str, float]:
        """faster-whisper base int8 (beam 5, 30 s window), then the text model: the baseline."""
        return metrics(self.cascade_base(), self.passage_base.numpy(), self.gold)

    def cascade_base(self) -> np.ndarray:
        """The text model's embedding of each validation clip's cascade transcript, cached on disk."""
        path = self.cache_dir / "val_cascade_transcripts.json"
        if path.is_file():
            transcripts = json.loads(path.read_text())
        else:
            from tqdm import tqdm

            from seal_rag.cascade import Transcriber

            transcriber = Transcriber()
            transcripts = [transcriber.transcribe(clip) for clip in tqdm(self.clips.audio, desc="cascade", unit="clip")]
            path.write_text(json.dumps(transcripts))
        return self._cached_base("val_cascade_base.npy", [t or " " for t in transcripts])


def format_row(name: str, m: dict[str, float]) -> str:
    return f"| {name} | {m['top1']:.3f} | {m['top10']:.3f} | {m['mrr']:.3f} |"


def main() -> None:
    parser = command_line(__doc__)
    parser.add_argument("--model", help="a SpeechEmbedding directory, run on the validation audio")
    parser.add_argument("--untrained", action="store_true", help="also the untrained model")
    parser.add_argument("--cascade", action="store_true")
    parser.add_argument("--oracle", action="store_true")
    parser.add_argument("--hybrid", action="store_true", help="with --model: also its fusion with the cascade")
    args = parse_command_line(parser)
    torch.set_num_threads(2)
    data = require(load_config(args.config), "data", ("cache_dir",))
    validation = Validation(data["cache_dir"], data.get("val_corpus", "all"))
    print(f"{len(validation.clips)} validation clips, {len(validation.passages)} passages")
    print("| variant | Top-1 | Top-10 | MRR |\n|---|---|---|---|")
    if args.oracle:
        print(format_row("text oracle (MiniLM on the true question)", validation.evaluate_oracle()))
    if args.cascade:
        start = time.time()
        print(format_row("cascade (faster-whisper base int8, beam 5)", validation.evaluate_cascade()), f"[{time.time() - start:.0f} s]")
    if args.untrained:
        print(format_row("untrained speech tower", validation.evaluate_untrained()))
    if args.model:
        from seal_rag import SpeechEmbedding

        figures = validation.evaluate_embedding(SpeechEmbedding.from_pretrained(args.model), hybrid=args.hybrid)
        print(format_row(f"{for_terminal(args.model)} (as shipped)", figures["speech"]))
        for name in ("speech/semantic", "speech/phonetic", "cascade, same text tower"):
            if name in figures:
                print(format_row(f"  {name}", figures[name]))
        if args.hybrid:
            print(format_row("hybrid: reciprocal-rank fusion of it and the cascade", figures["hybrid"]))


if __name__ == "__main__":
    run_command(main)

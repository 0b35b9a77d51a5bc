"""Rank a benchmark's spoken queries against a passage matrix as `ask` ranks them against an index.

`ask` and `serve` (`retrieve.Retriever` with its `keyword_reranker`) decode a query's phonetic
half with the knowledge base's phoneme model, search with the joined vector, then re-rank the
top `depth` hits by keyword spotting. The benchmarks score whole matrices instead of a Chroma
index; these functions give them the same order.
"""

from __future__ import annotations

import time
from typing import Sequence

import numpy as np

from ..keyword_rerank import KeywordReranker
from ..store import Hit

SERVED = "seal (as served)"  # a benchmark's name for the speech tower ranked as `ask` ranks


def keyword_scores(reranker: KeywordReranker, joined: np.ndarray, logits: Sequence[np.ndarray], texts: Sequence[str],
                   times: list[float] | None = None) -> np.ndarray:
    """`joined` (queries, passages) with each query's top `reranker.settings.depth` passages above
    all others, in the order `reranker.rerank` gives them; `times` gets each re-ranking's CPU seconds."""
    out = joined.copy()
    for q, x in enumerate(logits):
        top = np.argsort(-joined[q])[: reranker.settings.depth]
        hits = [Hit(r, str(p), float(joined[q, p]), texts[p], {}) for r, p in enumerate(top, 1)]
        start = time.process_time()
        ranked = reranker.rerank(x, hits)
        if times is not None:
            times.append(time.process_time() - start)
        out[q, [int(h.id) for h in ranked]] = 10 - 0.001 * np.arange(len(ranked))
    return out


def served_scores(model, reranker: KeywordReranker, vectors: np.ndarray, logits: Sequence[np.ndarray], passages: np.ndarray,
                  texts: Sequence[str]) -> np.ndarray:
    """(queries, passages) scores ordered as `ask` orders hits: the query vectors (`encode_clips`)
    with their phonetic half decoded by the knowledge base (when the reranker carries a decoder),
    against the joined `passages` (text tower), then keyword re-ranking of the top `depth`."""
    if reranker.decoder is not None:
        vectors = np.stack([reranker.decoder.query_vector(model, v, x) for v, x in zip(vectors, logits)])
    return keyword_scores(reranker, np.asarray(vectors, np.float32) @ passages.T, logits, texts)

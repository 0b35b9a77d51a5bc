"""Reciprocal-rank fusion: hybrid mode's ranking, over hit lists (the retriever) or score matrices (benchmarks).

Both read each ranking to the same depth with the same weights, so a benchmark's hybrid
figure is the hybrid that `ask --mode hybrid` serves.
"""

from __future__ import annotations

import numpy as np

from .store import Hit

RRF_K = 60  # the constant from Cormack et al. (2009); damps the weight of top ranks
HYBRID_DEPTH = 20  # how deep each ranking is read before fusing


def rrf_weight(rank):
    """What a hit at 1-based `rank` adds to its fused score (numbers or arrays)."""
    return 1.0 / (RRF_K + rank)


def reciprocal_rank_fusion(rankings: list[list[Hit]], k: int) -> list[Hit]:
    """Fuse rankings: each hit scores the sum of `rrf_weight(rank)` over the lists it is in."""
    scores: dict[str, float] = {}
    first_seen: dict[str, Hit] = {}
    for ranking in rankings:
        for hit in ranking:
            scores[hit.id] = scores.get(hit.id, 0.0) + rrf_weight(hit.rank)
            first_seen.setdefault(hit.id, hit)
    best = sorted(scores, key=lambda i: -scores[i])[:k]
    return [Hit(rank, i, scores[i], first_seen[i].text, first_seen[i].metadata) for rank, i in enumerate(best, 1)]


def fused_scores(*score_matrices: np.ndarray, depth: int = HYBRID_DEPTH) -> np.ndarray:
    """The same fusion over `(queries, passages)` score matrices, each ranking read to `depth`."""
    fused = np.zeros_like(score_matrices[0])
    for scores in score_matrices:
        ranks = np.argsort(np.argsort(-scores, axis=1, kind="stable"), axis=1) + 1
        fused += np.where(ranks <= depth, rrf_weight(ranks), 0.0)
    return fused

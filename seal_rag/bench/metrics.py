"""Retrieval metrics with 95% bootstrap intervals."""

from __future__ import annotations

import numpy as np

CUTOFFS = (1, 3, 10)
BOOTSTRAP_SAMPLES = 1000


def gold_ranks(scores: np.ndarray, passage_ids: list[str], golds: list[frozenset[str]]) -> np.ndarray:
    """1-based rank of the best-placed gold passage per query (a large number when absent).

    Args:
        scores: `(queries, passages)` similarities.
    """
    order = np.argsort(-scores, axis=1)
    ranks = np.full(len(golds), 10**9)
    ids = np.asarray(passage_ids)
    for row, gold in enumerate(golds):
        hits = np.flatnonzero(np.isin(ids[order[row]], list(gold)))
        if hits.size:
            ranks[row] = hits[0] + 1
    return ranks


def per_query(ranks: np.ndarray) -> dict[str, np.ndarray]:
    values = {f"top{k}": (ranks <= k).astype(float) for k in CUTOFFS}
    values["mrr@10"] = np.where(ranks <= 10, 1.0 / ranks, 0.0)
    return values


def summarise(ranks: np.ndarray, seed: int = 0) -> dict[str, dict[str, float]]:
    """Mean and 95% bootstrap interval of Top-1/3/10 and MRR@10."""
    rng = np.random.default_rng(seed)
    samples = rng.integers(0, len(ranks), size=(BOOTSTRAP_SAMPLES, len(ranks)))
    result = {}
    for name, values in per_query(ranks).items():
        means = values[samples].mean(axis=1)
        result[name] = {"mean": float(values.mean()), "low": float(np.percentile(means, 2.5)),
                        "high": float(np.percentile(means, 97.5))}
    return result

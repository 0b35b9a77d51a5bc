"""Joined-cosine search over two homes: the semantic half in Chroma, the phonetic half in `PhoneticIndex`.

A joined vector is `[semantic * sqrt(1 - w), phonetic * sqrt(w)]` with both halves unit
vectors, so its cosine with a passage is `(1 - w) * semantic cosine + w * phonetic cosine`
(a query weighed otherwise, `SpeechEmbedding.weighted`, scores `a * semantic + b * phonetic`
cosine, its cosine with the passage's joined vector, `Split.query_halves`).
The semantic cosine comes from Chroma's HNSW for its top M, and from the stored vectors of
those of the phonetic top P that could still reach the top k; the phonetic cosine of any
passage is exact (`PhoneticIndex.score_rows`), and its top P comes from the index's two-phase
search. No passage outside both lists can beat
`a * (M-th semantic) + b * (P-th phonetic)`, so once the k-th best candidate reaches
that bound the top k is the joined ranking (Fagin's threshold algorithm); until then both
lists grow. Each list is approximate (Chroma's HNSW; the phonetic first phase), so the result
is a dense search of the joined vectors up to those two (`seal-rag bench scale` measures its
recall against exact scoring).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .phonetic_index import PhoneticIndex

FIRST_DEPTH = 100  # candidates read from each half at first; one round suffices for nearly every query


@dataclass(frozen=True)
class Split:
    """Where a joined vector splits, and the phonetic half's share of the cosine."""

    semantic_dim: int
    weight: float

    def halves(self, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """`(n, D)` joined vectors -> the `(n, semantic_dim)` and `(n, D - semantic_dim)` unit halves."""
        vectors = np.asarray(vectors, np.float32).reshape(len(vectors), -1)
        semantic = vectors[:, : self.semantic_dim] / np.float32(np.sqrt(1 - self.weight))
        phonetic = vectors[:, self.semantic_dim :] / np.float32(np.sqrt(self.weight))
        return semantic, phonetic

    def query_halves(self, vector: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, float]:
        """One query vector -> its semantic and phonetic halves as unit vectors, and each half's share
        of the query's dot product with a passage's joined vector: `(1 - w, w)` for a joined unit
        vector, others for a query weighed otherwise (`SpeechEmbedding.weighted`)."""
        vector = np.asarray(vector, np.float32).reshape(-1)
        semantic, phonetic = vector[: self.semantic_dim], vector[self.semantic_dim :]
        norms = [float(np.linalg.norm(half)) for half in (semantic, phonetic)]
        semantic, phonetic = (half / np.float32(n) if n > 0 else half for half, n in zip((semantic, phonetic), norms))
        return semantic, phonetic, float(np.sqrt(1 - self.weight)) * norms[0], float(np.sqrt(self.weight)) * norms[1]


def fused_search(collection, phonetic: PhoneticIndex, split: Split, vector: np.ndarray, k: int,
                 where: dict | None = None) -> list[tuple[str, float]]:
    """The `k` best (chunk id, cosine with the chunk's joined vector) for one unit query vector, best first.

    Args:
        collection: The Chroma collection holding the semantic halves (cosine space).
        where: A Chroma metadata filter, applied to both halves.
    """
    with phonetic.lock:
        return _search(collection, phonetic, split, vector, k, where)


def _search(collection, phonetic: PhoneticIndex, split: Split, vector: np.ndarray, k: int, where: dict | None
            ) -> list[tuple[str, float]]:
    semantic_query, phonetic_query, a, b = split.query_halves(vector)  # score = a * semantic + b * phonetic cosine
    buckets = np.flatnonzero(phonetic_query)
    weights = phonetic_query[buckets]
    live_rows = phonetic.live_count
    semantic: dict[str, float] = {}  # id -> semantic cosine, for candidates that pass `where`
    excluded: set[str] = set()  # candidates `where` rejects
    joined: dict[str, float] = {}  # id -> joined cosine, for candidates in `semantic`
    depth = FIRST_DEPTH + 4 * k
    while True:
        # Semantic half: Chroma's top `depth`, filtered by `where` (fewer only when fewer chunks match).
        found = collection.query(query_embeddings=semantic_query[None], n_results=depth, where=where, include=["distances"])
        ids, distances = found["ids"][0], found["distances"][0]
        semantic.update({i: 1.0 - d for i, d in zip(ids, distances)})
        every_match_seen = len(ids) < depth
        semantic_floor = 1.0 - distances[-1] if ids else -1.0

        # Phonetic half: the top `depth` of all live rows, their cosines exact.
        take = min(depth, live_rows)
        top_rows, top_scores = phonetic.top(buckets, weights, take)
        phonetic_floor = float(top_scores[-1]) if take < live_rows and len(top_scores) else -np.inf
        _score_new(joined, phonetic, semantic, buckets, weights, a, b)
        if not every_match_seen:  # else a chunk Chroma did not return fails `where`
            # A phonetic candidate Chroma did not return has a semantic cosine below the depth-th
            # one (the bound the stop test below rests on too), so one whose phonetic cosine cannot
            # lift it to the k-th best joined cosine so far cannot enter the top k: only the
            # others' semantic halves are read from Chroma (a read costs per id).
            kth = sorted(joined.values(), reverse=True)[k - 1] if len(joined) >= k else -np.inf
            unseen = [i for i, score in zip(phonetic.ids_at(top_rows.tolist()), top_scores.tolist())
                      if i not in semantic and i not in excluded and a * semantic_floor + b * score >= kth]
            if unseen:
                got = collection.get(ids=unseen, where=where, include=["embeddings"])
                if got["ids"]:
                    cosines = np.asarray(got["embeddings"], np.float32) @ semantic_query
                    semantic.update(zip(got["ids"], cosines.tolist()))
                    _score_new(joined, phonetic, semantic, buckets, weights, a, b)
                excluded.update(set(unseen) - set(got["ids"]))

        best = sorted(joined.items(), key=lambda item: (-item[1], item[0]))[:k]
        bound = a * semantic_floor + b * phonetic_floor
        if every_match_seen or phonetic_floor == -np.inf or (len(best) == k and best[-1][1] >= bound):
            return best
        depth *= 4


def _score_new(joined: dict[str, float], phonetic: PhoneticIndex, semantic: dict[str, float], buckets: np.ndarray,
               weights: np.ndarray, a: float, b: float) -> None:
    """Add the joined cosine of each candidate in `semantic` that `joined` lacks: its semantic cosine
    given, its phonetic one scored exactly (0 if it has no row)."""
    new = [i for i in semantic if i not in joined]
    if not new:
        return
    rows = phonetic.rows_of(new)
    phon = np.where(rows >= 0, phonetic.score_rows(np.maximum(rows, 0), buckets, weights), 0.0)
    joined.update(zip(new, (a * np.array([semantic[i] for i in new]) + b * phon).tolist()))

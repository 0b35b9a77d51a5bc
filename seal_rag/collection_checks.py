"""Checks and scores for any Chroma collection, whoever filled it.

A collection that seal-rag ingested carries the model's stamp and gets the exact check;
one that LlamaIndex or LangChain filled itself carries none, so one stored passage is
re-embedded and compared with its stored vector instead.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import IndexMismatchError, StoreError
from .store import LAYOUT, LAYOUT_KEY, SPACE_KEY, SealIndex, ensure_not_empty  # noqa: F401 - the integrations' checks live here

# The same model gives ~1 (~0.7 when LlamaIndex embedded metadata with the text);
# another model's space is unrelated, ~0 +- 0.05 at D=384.
PROBE_MIN_COSINE = 0.3


def verify_collection(collection: Any, model: Any) -> None:
    """Raise `IndexMismatchError` unless `collection` holds vectors of `model`'s text space."""
    if SPACE_KEY in (collection.metadata or {}):
        SealIndex(collection).check_model(model)
        return
    sample = collection.get(limit=1, include=["embeddings", "documents"])
    if not sample["ids"]:
        return  # empty: the query says so with a StoreError
    stored = np.asarray(sample["embeddings"][0], dtype=np.float32)
    if stored.size != model.dim:
        raise IndexMismatchError(
            f"collection {collection.name!r} holds {stored.size}-d vectors but {model.name!r} makes {model.dim}-d ones: "
            "query it with the model that filled it, or re-index it with this model"
        )
    text = (sample.get("documents") or [None])[0]
    if text:
        cosine = float(model.embed_texts([text])[0] @ stored) / max(float(np.linalg.norm(stored)), 1e-12)
        if cosine < PROBE_MIN_COSINE:
            raise IndexMismatchError(
                f"collection {collection.name!r} was embedded by another model (a stored passage re-embedded by "
                f"{model.name!r} has cosine {cosine:.2f} with its vector): re-index it with this model"
            )


def seal_index(collection: Any, model: Any) -> SealIndex | None:
    """The `SealIndex` over a collection `seal-rag ingest` filled, when only it can search it; else None.

    With a phonetic model, such a collection holds only the semantic half of each vector (the
    phonetic half lives in seal-rag's phonetic index beside it), so a framework's own vector
    search over it cannot rank by the joined vector: the integrations search it through this.
    Collections a framework filled itself hold whole joined vectors and are searched as before,
    stamped by seal-rag or not.
    """
    stamp = collection.metadata or {}
    if SPACE_KEY not in stamp or getattr(model, "phonetic", None) is None or stamp.get(LAYOUT_KEY) != LAYOUT:
        return None
    if SealIndex(collection).stored_width() == model.dim:
        return None  # stamped by seal-rag, but the framework filled it with whole joined vectors: its own search ranks them
    key = (collection.id, id(model))
    index = _opened.get(key)
    if index is None or index.collection is not collection:
        index = _opened[key] = SealIndex.for_collection(collection, model)  # maps the phonetic index once
    else:
        index.sync(model)
    return index


_opened: dict[tuple, SealIndex] = {}  # retrievers make a search per question; the phonetic index is opened once


def distance_space(collection: Any) -> str:
    """"cosine", "l2" or "ip": how Chroma measures distance in this collection."""
    config = getattr(collection, "configuration", None) or {}
    for key in ("hnsw", "spann"):
        space = (config.get(key) or {}).get("space")
        if space:
            return str(space)
    return str((collection.metadata or {}).get("hnsw:space", "l2"))


def cosine_from_distance(distance: float, space: str) -> float:
    """Cosine similarity of unit vectors from Chroma's distance, whatever the space."""
    # Chroma's l2 is the squared Euclidean distance: 2 - 2 cos for unit vectors.
    return 1.0 - distance / 2.0 if space == "l2" else 1.0 - distance


def as_store_error(error: Exception) -> StoreError:
    """A vector store's own failure (Chroma's, or a framework's), as seal-rag's one-line `StoreError`."""
    if isinstance(error, StoreError):
        return error
    return StoreError(
        f"the vector store failed to answer ({type(error).__name__}: {error}): check it is reachable and built by this model"
    )

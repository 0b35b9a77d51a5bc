"""The public names of llama-index-seal, and its namespace-package layout."""

from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1]


def test_public_names_are_pinned():
    import llama_index.embeddings.seal as embeddings
    import llama_index.readers.seal as readers
    import llama_index.retrievers.seal as retrievers

    assert embeddings.__all__ == ["SealEmbedding"]
    assert readers.__all__ == ["SealReader"]
    assert retrievers.__all__ == ["SealExtractiveSynthesizer", "SealQueryEngine", "SealSpeechRetriever"]
    for module in (embeddings, readers, retrievers):
        assert all(hasattr(module, name) for name in module.__all__)


def test_classes_are_ecosystem_types():
    from llama_index.core.base.base_retriever import BaseRetriever
    from llama_index.core.base.embeddings.base import BaseEmbedding
    from llama_index.core.response_synthesizers import BaseSynthesizer
    from llama_index.embeddings.seal import SealEmbedding
    from llama_index.retrievers.seal import SealExtractiveSynthesizer, SealSpeechRetriever

    assert issubclass(SealEmbedding, BaseEmbedding)
    assert issubclass(SealSpeechRetriever, BaseRetriever)
    assert issubclass(SealExtractiveSynthesizer, BaseSynthesizer)


def test_shared_levels_are_namespace_packages():
    # An __init__.py in llama_index/, llama_index/embeddings/, readers/ or retrievers/
    # would shadow llama-index-core and every other integration.
    for shared in ("llama_index", "llama_index/embeddings", "llama_index/readers", "llama_index/retrievers"):
        assert not (PACKAGE / shared / "__init__.py").exists(), shared
    import llama_index
    import llama_index.core  # still importable beside this package
    import llama_index.vector_stores.chroma  # noqa: F401

    assert llama_index.__file__ is None  # a namespace package has no file

"""The public names of langchain-seal."""

from __future__ import annotations


def test_public_names_are_pinned():
    import langchain_seal

    assert langchain_seal.__all__ == [
        "SealDocumentLoader",
        "SealEmbeddings",
        "SealExtractiveAnswer",
        "SealSpeechRetriever",
        "SealTranscriber",
        "build_audio_chain",
    ]
    assert all(hasattr(langchain_seal, name) for name in langchain_seal.__all__)


def test_classes_are_ecosystem_types():
    from langchain_core.embeddings import Embeddings
    from langchain_core.retrievers import BaseRetriever
    from langchain_core.runnables import Runnable
    from langchain_seal import SealEmbeddings, SealExtractiveAnswer, SealSpeechRetriever, SealTranscriber

    assert issubclass(SealEmbeddings, Embeddings)
    assert issubclass(SealSpeechRetriever, BaseRetriever)
    assert issubclass(SealTranscriber, Runnable) and issubclass(SealExtractiveAnswer, Runnable)

"""LlamaIndex retriever for seal-rag: ask any LlamaIndex vector index by voice."""

from llama_index.retrievers.seal.base import SealSpeechRetriever
from llama_index.retrievers.seal.query_engine import SealQueryEngine
from llama_index.retrievers.seal.synthesizer import SealExtractiveSynthesizer

__all__ = ["SealExtractiveSynthesizer", "SealQueryEngine", "SealSpeechRetriever"]

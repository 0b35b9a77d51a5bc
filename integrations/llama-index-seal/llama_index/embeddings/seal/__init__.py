"""LlamaIndex embedding for seal-rag: text and speech in one vector space."""

from llama_index.embeddings.seal.base import SealEmbedding

__all__ = ["SealEmbedding"]

"""LlamaIndex reader for seal-rag: documents cut as `seal-rag ingest` cuts them."""

from llama_index.readers.seal.base import SealReader

__all__ = ["SealReader"]

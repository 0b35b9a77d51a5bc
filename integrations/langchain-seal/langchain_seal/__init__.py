"""LangChain integration for seal-rag: ask any LangChain vector store by voice."""

from langchain_seal.chains import SealExtractiveAnswer, build_audio_chain
from langchain_seal.document_loaders import SealDocumentLoader
from langchain_seal.embeddings import SealEmbeddings
from langchain_seal.retrievers import SealSpeechRetriever
from langchain_seal.transcription import SealTranscriber

__all__ = [
    "SealDocumentLoader",
    "SealEmbeddings",
    "SealExtractiveAnswer",
    "SealSpeechRetriever",
    "SealTranscriber",
    "build_audio_chain",
]

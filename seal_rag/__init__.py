"""seal-rag: ask a knowledge base a question by voice (SEAL speech-to-text embedding alignment)."""

from .config import SealConfig
from .errors import (
    ArgumentError,
    AudioError,
    AudioFileNotFoundError,
    AudioTooLongError,
    AudioTooShortError,
    DocumentError,
    EmptyAudioError,
    IndexMismatchError,
    InvalidSamplesError,
    LLMError,
    ModelLoadError,
    NotAudioError,
    SealError,
    SilentAudioError,
    StoreError,
)

__all__ = [
    "ArgumentError",
    "AudioError",
    "AudioFileNotFoundError",
    "AudioTooLongError",
    "AudioTooShortError",
    "DocumentError",
    "EmptyAudioError",
    "IndexMismatchError",
    "InvalidSamplesError",
    "LLMError",
    "ModelLoadError",
    "NotAudioError",
    "SealConfig",
    "SealError",
    "SilentAudioError",
    "SpeechEmbedding",
    "StoreError",
    "UntrainedModelWarning",
    "load_model",
]
__version__ = "0.1.0"

_FROM_EMBEDDING = {"SpeechEmbedding", "UntrainedModelWarning", "load_model"}


def __getattr__(name: str):
    # `seal_rag.embedding` imports torch and transformers (seconds). Importing it on first
    # use lets the CLI reject a bad path or a silent clip before paying for that.
    if name in _FROM_EMBEDDING:
        from . import embedding

        return getattr(embedding, name)
    raise AttributeError(f"module 'seal_rag' has no attribute {name!r}")

"""seal-rag: ask a knowledge base a question by voice (SEAL speech-to-text embedding alignment)."""

from .config import SealConfig
from .embedding import SpeechEmbedding, UntrainedModelWarning, load_model
from .errors import (
    AudioError,
    AudioFileNotFoundError,
    AudioTooLongError,
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
    "AudioError",
    "AudioFileNotFoundError",
    "AudioTooLongError",
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

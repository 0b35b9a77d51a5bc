"""Project exceptions. Each message names the problem and the fix, in one line."""


class SealError(Exception):
    """Base class of every error seal-rag raises on purpose."""


class AudioError(SealError, ValueError):
    """Audio that cannot be turned into a query."""


class AudioFileNotFoundError(AudioError, FileNotFoundError):
    """The audio path does not exist."""


class NotAudioError(AudioError):
    """The file or bytes could not be decoded as audio."""


class EmptyAudioError(AudioError):
    """The clip has no samples."""


class SilentAudioError(AudioError):
    """The clip is digital silence."""


class InvalidSamplesError(AudioError):
    """The clip holds NaN or infinite samples, or has an unusable shape."""


class AudioTooLongError(AudioError):
    """The clip is longer than the configured maximum."""


class AudioTooShortError(AudioError):
    """The clip is too short to hold a spoken question (or its header understates its length)."""


class ModelLoadError(SealError):
    """A model could not be found, read or matched to its configuration."""


class StoreError(SealError):
    """The vector store is missing, unreachable or was built by another model."""


class IndexMismatchError(StoreError):
    """The index was built by a different model than the one querying it."""


class ModelMismatchError(IndexMismatchError):
    """The index was built in another model's space. `problem` says so without the fix, which
    depends on the command (only some can take another model)."""

    def __init__(self, problem: str, fix: str):
        super().__init__(f"{problem}: {fix}")
        self.problem = problem


class FrameworkVectorsError(IndexMismatchError):
    """A framework (LlamaIndex, LangChain) wrote whole joined vectors into the collection: seal-rag's
    own search cannot read it, the frameworks' can."""


class DocumentError(SealError):
    """Documents could not be read or there were none to read."""


class LLMError(SealError):
    """The answer-generating model could not be reached or answered badly."""


class ArgumentError(SealError, ValueError):
    """A command-line or API argument is out of range or malformed."""


class DataNotFoundError(SealError):
    """A benchmark or training data set is not where the data setting points."""

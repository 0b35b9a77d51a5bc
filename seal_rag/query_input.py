"""What a query is: a spoken clip or a typed question, told apart the same way everywhere.

Frameworks hand seal-rag strings: a LlamaIndex `QueryBundle.query_str`, a LangChain
`embed_query` argument, a retriever's input. Embedding the path "q.wav" as text gives a
confident, wrong ranking (a path scores higher than real speech does), so every entry point
asks `is_audio_path` first and sends audio to the speech tower.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from .audio import SAMPLE_RATE, AudioSource
from .errors import NotAudioError

# Containers soundfile reads, and a few it does not (they then fail as NotAudioError,
# which names the fix, rather than being embedded as text).
AUDIO_SUFFIXES = frozenset(
    ".wav .wave .flac .ogg .oga .opus .mp3 .m4a .aac .aif .aiff .aifc .au .caf .w64 .webm .wma".split()
)
AUDIO_TYPES = (str, Path, bytes, bytearray, np.ndarray)
_MAGIC = ("RIFF", "fLaC", "OggS", "ID3", "FORM")  # how encoded audio starts
_LONGEST_PATH = 4096


def is_audio_path(query: Any) -> bool:
    """Whether a query names an audio file rather than asking a typed question.

    A `Path` always does. A string does when it is one token (typed questions have spaces)
    with an audio suffix or a path separator, or names an existing file; or when a string
    with spaces is an existing file's path.
    """
    if isinstance(query, Path):
        return True
    if not isinstance(query, str) or "\n" in query or "\x00" in query or len(query) > _LONGEST_PATH or not query.strip():
        return False
    text = query.strip()
    if any(c.isspace() for c in text):
        return Path(text).is_file()
    return Path(text).suffix.lower() in AUDIO_SUFFIXES or "/" in text or "\\" in text or Path(text).is_file()


def reject_encoded_audio(text: str) -> None:
    """Raise `NotAudioError` for audio bytes that were decoded into a string by mistake."""
    if "\x00" in text[:1024] or text.startswith(_MAGIC):
        raise NotAudioError(
            "this text is encoded audio decoded as a string: pass the bytes themselves or the file's path"
        )


def audio_batch(audio: Any) -> tuple[list[AudioSource], bool]:
    """`(clips, single)` for one clip or a list (or tuple) of clips, each checked for type.

    Raises:
        NotAudioError: neither a clip nor a list of clips.
    """
    single = isinstance(audio, AUDIO_TYPES)
    clips = [audio] if single else list(audio) if isinstance(audio, (list, tuple)) else None
    wrong = type(audio) if clips is None else next((type(c) for c in clips if not isinstance(c, AUDIO_TYPES)), None)
    if clips == []:
        raise NotAudioError("the list of clips is empty: pass at least one audio file path, encoded audio bytes or sample array")
    if wrong is not None:
        raise NotAudioError(
            f"cannot embed a {wrong.__name__} as audio: pass an audio file path, encoded audio bytes or a "
            "sample array, or a list of them"
        )
    return clips, single


def embed_audio_forms(model, audio: Any, sample_rate: int) -> list[float] | list[list[float]]:
    """The integrations' `embed_audio` / `get_audio_embedding`: one vector for a clip, a list for a list."""
    clips, single = audio_batch(audio)
    vectors = model.embed_audio(clips, sample_rate=sample_rate).tolist()
    return vectors[0] if single else vectors


def embed_one_clip(model, audio: Any, sample_rate: int) -> np.ndarray:
    """One clip's speech-tower vector, float32; a list is refused."""
    clips, single = audio_batch(audio)
    if not single:
        raise NotAudioError("this embeds one clip, not a list: use embed_audio / get_audio_embedding for a list")
    return model.embed_audio(clips, sample_rate=sample_rate)[0]


def audio_reference(audio: AudioSource, sample_rate: int = SAMPLE_RATE) -> str:
    """The file's path for a file, else `describe_audio`'s description: what responses report."""
    return str(audio) if isinstance(audio, (str, Path)) else describe_audio(audio, sample_rate)


def describe_audio(audio: AudioSource, sample_rate: int = SAMPLE_RATE) -> str:
    """`<audio q.wav 3.2 s>`: what callbacks and tracers see instead of the clip's bytes."""
    if isinstance(audio, np.ndarray):
        seconds = audio.shape[0] / sample_rate if audio.ndim else 0.0
        return f"<audio {seconds:.1f} s of samples>"
    if isinstance(audio, (bytes, bytearray)):
        name, handle = f"{len(audio):,} bytes", io.BytesIO(bytes(audio))
    elif isinstance(audio, (str, Path)):
        name, handle = Path(audio).name, audio
    else:  # not a clip at all (None, a list): the real load names the problem, with its own error
        return f"<audio {type(audio).__name__}>"
    seconds = _header_seconds(handle)
    return f"<audio {name} {seconds:.1f} s>" if seconds is not None else f"<audio {name}>"


def _header_seconds(handle) -> float | None:
    import soundfile as sf

    try:
        return float(sf.info(handle).duration)
    except Exception:  # unreadable or missing: the real load reports it, with its own error
        return None

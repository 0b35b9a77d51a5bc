"""The two-stage baseline: faster-whisper transcribes, then the text tower embeds the transcript.

It sits behind the same `embed_audio` interface as `SpeechEmbedding`, so benchmarks compare
like with like, users can pick it, and its transcript feeds text-only chat models.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from .audio import SAMPLE_RATE, AudioSource, load_audio, log_mel, split_windows
from .errors import ModelLoadError
from .model_sources import DEFAULT_WHISPER, is_packaged_whisper, packaged_whisper_ct2_dir

TOKENS_PER_SECOND = 8  # generous bound on English speech; caps runaway repetition loops
MIN_NEW_TOKENS = 16


class Transcriber:
    """faster-whisper on CPU, int8.

    Args:
        model: "whisper-base" (shipped) or a CTranslate2 Whisper directory.
        beam_size: 1 is greedy; 5 is faster-whisper's default.
        fit_window: Decode from features at the clip's real length instead of a 30 s window.
            Several times faster; guarded against repetition loops by an n-gram ban, a
            repetition penalty and a length cap proportional to the clip.
    """

    def __init__(self, model: str = DEFAULT_WHISPER, beam_size: int = 5, fit_window: bool = False, compute_type: str = "int8"):
        from faster_whisper import WhisperModel
        from faster_whisper.tokenizer import Tokenizer

        directory = packaged_whisper_ct2_dir() if is_packaged_whisper(model) else Path(model).expanduser()
        if not (Path(directory) / "model.bin").is_file():
            raise ModelLoadError(f"{model!r} is not a CTranslate2 Whisper directory: convert it with ct2-transformers-converter")
        self.model = WhisperModel(str(directory), device="cpu", compute_type=compute_type, local_files_only=True)
        self.tokenizer = Tokenizer(self.model.hf_tokenizer, self.model.model.is_multilingual, task="transcribe", language="en")
        self.beam_size = beam_size
        self.fit_window = fit_window

    def transcribe(self, clip: np.ndarray) -> str:
        """16 kHz mono samples -> English text."""
        if self.fit_window:
            return " ".join(self._decode_fitted(window) for window in split_windows(clip)).strip()
        segments, _ = self.model.transcribe(
            clip, language="en", beam_size=self.beam_size, without_timestamps=True, condition_on_previous_text=False
        )
        return " ".join(segment.text.strip() for segment in segments).strip()

    def _decode_fitted(self, window: np.ndarray) -> str:
        import ctranslate2

        mel = log_mel(window, self.model.model.n_mels)
        if mel.shape[1] % 2:  # the encoder's stride-2 conv wants an even frame count
            mel = np.pad(mel.numpy(), ((0, 0), (0, 1)))
        features = ctranslate2.StorageView.from_array(np.ascontiguousarray(np.asarray(mel)[None], dtype=np.float32))
        seconds = window.size / SAMPLE_RATE
        result = self.model.model.generate(
            features,
            [list(self.tokenizer.sot_sequence) + [self.tokenizer.no_timestamps]],
            beam_size=self.beam_size,
            max_length=MIN_NEW_TOKENS + int(TOKENS_PER_SECOND * seconds),
            no_repeat_ngram_size=3,
            repetition_penalty=1.1,
            suppress_blank=True,
        )
        return self.tokenizer.decode(result[0].sequences_ids[0]).strip()


class CascadeEmbedding:
    """ASR then the text tower, with `SpeechEmbedding`'s `embed_audio` contract.

    Args:
        text_embedding: The `SpeechEmbedding` whose text tower embeds transcripts.
        transcriber: A `Transcriber`; by default faster-whisper base, int8, beam 5.
    """

    def __init__(self, text_embedding, transcriber: Transcriber | None = None):
        self.text_embedding = text_embedding
        self.transcriber = transcriber or Transcriber()
        self.dim = text_embedding.dim

    def transcribe(self, sources: Sequence[AudioSource] | AudioSource, sample_rate: int = SAMPLE_RATE) -> list[str]:
        if isinstance(sources, (str, Path, bytes, bytearray, np.ndarray)):
            sources = [sources]
        max_seconds = self.text_embedding.config.max_seconds
        return [self.transcriber.transcribe(load_audio(s, sample_rate, max_seconds)) for s in sources]

    def embed_audio(self, sources: Sequence[AudioSource] | AudioSource, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
        """Transcribe, then embed the transcripts: `(n, dim)` float32, unit norm."""
        return self.embed_transcripts(self.transcribe(sources, sample_rate))

    def embed_transcripts(self, transcripts: list[str]) -> np.ndarray:
        # An empty transcript (ASR heard nothing) still needs a vector; a space embeds to one.
        return self.text_embedding.embed_texts([t or " " for t in transcripts])

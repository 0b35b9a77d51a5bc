"""The architecture of a seal-rag model, saved inside every model directory."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path

from .atomic_file import atomic_path
from .errors import ModelLoadError
from .model_sources import DEFAULT_TEXT_MODEL, DEFAULT_WHISPER

MODELS_DIR = Path(__file__).parent / "models"  # model directories shipped in the package
DEFAULT_MODEL = "seal-base-minilm"
CONTEXT_HEAD_DIM = 64  # width of one attention head in the context layers
MAX_WHOLE_SETTING = 1_000_000  # past it a size or count is a typo or damage, not a model
MAX_RECOGNIZERS = 8  # each adds a recognizer pass to every query; a larger count is a typo, not a model
ADAPT_MAX_SENTENCES = 4000  # `seal-rag adapt`'s default cap on sentences spoken (seal_rag.adapt)
# Voices per sentence: on validation, 2 takes beat 1 take for twice the passes (same steps).
ADAPT_TAKES = 2


def _fits(value: object, kind: type) -> bool:
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value < math.inf
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_WHOLE_SETTING
    return isinstance(value, kind)


@dataclass
class SealConfig:
    """Sizes and choices of both towers. Saved as `config.json` next to the weights.

    Attributes:
        whisper_model: Base speech encoder: "whisper-base" (shipped), a local dir or a Hub id.
        text_model: Base sentence model: "all-MiniLM-L6-v2" (shipped), a path or a Hub id.
        text_dim: Output size of the sentence model (384 for MiniLM).
        dim: D, the shared space both towers map into.
        adapter_dim: Channels of the Conv1D adapter.
        adapter_kernel: Kernel of the Conv1D adapter, in encoder positions (20 ms each).
        adapter_stride: Stride of the adapter: how much it shortens the sequence.
        mlp_hidden: Hidden width of the MLP after the adapter.
        context_layers: Transformer layers between the adapter and the MLP (0 = none), so each
            position sees the whole utterance before it is mapped into the text space.
        pooling: "mean" or "attention" over time.
        token_level: The text model reads the MLP's output at each position as a token
            (`inputs_embeds`) and its mean pool is the clip's vector; `pooling` is then unused.
        tuned_reader_layers: With `token_level`, how many of the text model's bottom layers the
            speech tower fine-tunes in its own copy (0 = it reads the frozen text model).
        trainable_encoder_layers: How many of Whisper's top encoder layers are trained (0 = frozen).
        phonetic_dim: Buckets of the phonetic half (`seal_rag.phonetic`: hashed phoneme n-grams,
            heard by a CTC head on the speech side, spelled out by espeak-ng on the text side);
            0 = none. Vectors are `dim + phonetic_dim` long.
        phonetic_weight: The phonetic half's share of the cosine between a query and a passage.
        phonetic_decoding: How a spoken query's phonemes are read from the recognizer: "greedy"
            (its 1-best string) or "soft" (expected n-gram counts over its top alternatives,
            `seal_rag.phonetic.soft_ngram_counts`). Query side only: passages and the index's
            space are the same either way. Old model directories, without it, stay greedy.
        phonetic_temperature, phonetic_top_k, phonetic_min_prob, phonetic_min_insert: the soft
            decoding's settings (`seal_rag.phonetic.SoftDecoding`), chosen on the piper
            validation family (`training/unseen_voices.py`).
        phonetic_recognizers: Phoneme recognizers heard together, their log-probabilities averaged
            (`seal_rag.phonetic.RecognizerEnsemble`); 1 = one, as older model directories.
        spelled_weight: With a knowledge base (`ask`, `serve`, the retrievers), a spoken query's
            semantic half is the text tower's vector of its decoded phonemes spelled with the
            knowledge base's words (`seal_rag.spelling`), and the phonetic half has this share of
            the score instead of `phonetic_weight` (chosen on the piper validation family); 0 = the
            speech tower's semantic half always. Query side only: the index is the same either way.
        max_seconds: Longest query accepted.
        status: "released" once the speech tower beats the cascade on validation;
            "experimental" for an early checkpoint, which warns on every load.
    """

    whisper_model: str = DEFAULT_WHISPER
    text_model: str = DEFAULT_TEXT_MODEL
    text_dim: int = 384
    dim: int = 384
    adapter_dim: int = 512
    adapter_kernel: int = 4
    adapter_stride: int = 4
    mlp_hidden: int = 1024
    context_layers: int = 0
    pooling: str = "attention"
    token_level: bool = False
    tuned_reader_layers: int = 0
    trainable_encoder_layers: int = 0
    phonetic_dim: int = 0
    phonetic_weight: float = 0.0
    phonetic_decoding: str = "greedy"
    phonetic_temperature: float = 1.0
    phonetic_top_k: int = 3
    phonetic_min_prob: float = 0.02
    phonetic_min_insert: float = 1.0
    phonetic_recognizers: int = 1
    spelled_weight: float = 0.0
    max_seconds: float = 600.0
    status: str = "released"

    def __post_init__(self):
        if self.pooling not in ("mean", "attention"):
            raise ModelLoadError(f"pooling must be 'mean' or 'attention', not {self.pooling!r}")
        if self.status not in ("released", "experimental"):
            raise ModelLoadError(f"status must be 'released' or 'experimental', not {self.status!r}")
        if self.context_layers and self.adapter_dim % CONTEXT_HEAD_DIM:
            raise ModelLoadError(f"adapter_dim must be a multiple of {CONTEXT_HEAD_DIM} when context_layers > 0")
        if self.adapter_kernel < self.adapter_stride:
            raise ModelLoadError("adapter_kernel must be at least adapter_stride, or frames are skipped")
        if not 0.0 <= self.phonetic_weight <= 1.0 or (self.phonetic_weight > 0) != (self.phonetic_dim > 0):
            raise ModelLoadError("phonetic_weight must be in (0, 1] with phonetic_dim > 0, or 0 with phonetic_dim = 0")
        if not 0.0 <= self.spelled_weight <= 1.0 or (self.spelled_weight > 0 and self.phonetic_dim == 0):
            raise ModelLoadError("spelled_weight must be in [0, 1], and 0 for a model without a phonetic half")
        if self.phonetic_decoding not in ("greedy", "soft"):
            raise ModelLoadError(f"phonetic_decoding must be 'greedy' or 'soft', not {self.phonetic_decoding!r}")
        if (self.phonetic_temperature <= 0 or self.phonetic_top_k < 1 or not 0 <= self.phonetic_min_prob < 1
                or not 0 < self.phonetic_min_insert <= 1):
            raise ModelLoadError("phonetic_temperature must be > 0, phonetic_top_k >= 1, phonetic_min_prob in [0, 1) "
                                 "and phonetic_min_insert in (0, 1]")
        if not 1 <= self.phonetic_recognizers <= MAX_RECOGNIZERS:
            raise ModelLoadError(f"phonetic_recognizers must be 1 to {MAX_RECOGNIZERS}")
        if self.tuned_reader_layers and not self.token_level:
            raise ModelLoadError("tuned_reader_layers needs token_level = true: only a token-level head has a reader")

    def save(self, path: Path) -> None:
        """Write atomically: a reader, or a stop mid-write, sees the old file or the new one."""
        with atomic_path(path) as partial:
            partial.write_text(json.dumps(dataclasses.asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> "SealConfig":
        try:
            values = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise ModelLoadError(f"cannot read model config {path} ({error}): is this a seal-rag model directory?") from None
        if not isinstance(values, dict):
            raise ModelLoadError(f"model config {path} is not a JSON object: re-save the model or restore config.json")
        fields = {f.name: type(f.default) for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(fields))
        if unknown:
            raise ModelLoadError(f"{path} has unknown settings {unknown}: upgrade seal-rag or fix the file")
        # A half-written or hand-edited file must fail here, in one line, not deep inside torch.
        wrong = [name for name, value in values.items() if not _fits(value, fields[name])]
        if wrong:
            raise ModelLoadError(f"{path} has settings of the wrong type or range {wrong[:3]}: re-save the model or fix config.json")
        return cls(**values)

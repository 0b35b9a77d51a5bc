"""`SpeechEmbedding`: the public face of both towers.

    >>> from seal_rag import SpeechEmbedding
    >>> emb = SpeechEmbedding.from_pretrained()
    >>> emb.embed_audio(["question.wav"]).shape
    (1, 8576)
    >>> emb.embed_texts(["a passage"]).shape
    (1, 8576)

The shipped model's vectors are its semantic half (384) joined to its phonetic half (8,192
hashed phoneme n-grams, `seal_rag.phonetic`); `emb.dim` gives the length.
"""

from __future__ import annotations

import hashlib
import warnings
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from .arguments import check_texts
from .audio import SAMPLE_RATE, AudioSource, load_audio
from .config import DEFAULT_MODEL, MODELS_DIR, SealConfig
from .errors import ModelLoadError
from .phonetic import PhoneticHalf, SoftDecoding
from .model_sources import beside
from .query_input import audio_batch
from .safe_text import for_terminal, one_line
from .speech_tower import SpeechTower
from .text_tower import TextTower, load_sentence_model
from .timing import timed
from .whisper_torch import load_whisper_encoder

CONFIG_FILE, WEIGHTS_FILE = "config.json", "model.safetensors"
UNTRAINED_SEED = 0


def _digest(prefix: str, state: dict[str, torch.Tensor]) -> str:
    digest = hashlib.sha256(prefix.encode())
    for name, tensor in sorted(state.items()):
        digest.update(name.encode())
        digest.update(tensor.float().numpy().tobytes())
    return digest.hexdigest()[:16]


def _model_digest(config: SealConfig, state: dict[str, torch.Tensor]) -> str:
    # Soft phonetic decoding and the spelled semantic half change what a query embeds to, so they
    # are part of the model's identity; greedy and no spelling (every older directory) add nothing,
    # so their fingerprints stay as they were.
    decoding = f"|soft:{_soft(config)}" if config.phonetic_decoding == "soft" else ""
    spelled = f"|spelled:{config.spelled_weight}" if config.spelled_weight else ""
    return _digest(f"{config.whisper_model}|{config.text_model}{decoding}{spelled}", state)


def _soft(config: SealConfig) -> SoftDecoding | None:
    """The phonetic half's soft decoding settings, or None for the greedy 1-best."""
    if config.phonetic_decoding != "soft":
        return None
    return SoftDecoding(config.phonetic_temperature, config.phonetic_top_k, config.phonetic_min_prob,
                        config.phonetic_min_insert)


def directory_fingerprint(path: str | Path) -> str:
    """`SpeechEmbedding.fingerprint` of a model directory, read from its files without building it.

    A checkpoint holds exactly `trainable_state_dict()`, so this equals the loaded model's
    fingerprint; it costs a file read instead of loading both base models.
    """
    path = Path(path)
    return _model_digest(SealConfig.load(path / CONFIG_FILE), load_file(path / WEIGHTS_FILE))


def shipped_fingerprint() -> str | None:
    """The fingerprint of the model shipped in the package, from its files (None if it has no weights)."""
    shipped = MODELS_DIR / DEFAULT_MODEL
    return directory_fingerprint(shipped) if (shipped / WEIGHTS_FILE).is_file() else None


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    """A model's safetensors file; a truncated or corrupt one is a one-line `ModelLoadError`."""
    try:
        return load_file(path)
    except Exception as error:  # noqa: BLE001 - safetensors raises its own and OS errors for a bad file
        raise _damaged(path, error) from None


def _damaged(path: Path, error: Exception) -> ModelLoadError:
    return ModelLoadError(
        f"cannot read the weights {for_terminal(str(path))} ({type(error).__name__}: {one_line(error, 120)}): "
        "the file is damaged; re-save the model or restore it"
    )


# Config fields that size a tensor: each must be a dimension of some tensor the weights file holds.
_WIDTHS = ("text_dim", "dim", "adapter_dim", "adapter_kernel", "mlp_hidden", "phonetic_dim")
_LAYER_COUNTS = ("context_layers", "tuned_reader_layers", "trainable_encoder_layers")


def _check_sizes(config: SealConfig, path: Path) -> None:
    """Refuse a config whose sizes the weights file cannot hold, before the model is built: a
    damaged or mistyped size (mlp_hidden 1000000) would otherwise allocate gigabytes, then fail.
    Reads only the file's header."""
    try:
        with safe_open(path, "pt") as f:
            shapes = [f.get_slice(key).get_shape() for key in f.keys()]
    except Exception as error:  # noqa: BLE001 - as `_read_weights`
        raise _damaged(path, error) from None
    dimensions = {d for shape in shapes for d in shape}
    wrong = [f"{name} {getattr(config, name)}" for name in _WIDTHS
             if getattr(config, name) and getattr(config, name) not in dimensions]
    # Every layer stores several tensors, so no honest count exceeds the file's tensors.
    wrong += [f"{name} {getattr(config, name)}" for name in _LAYER_COUNTS if getattr(config, name) > len(shapes)]
    if wrong:
        raise ModelLoadError(
            f"{for_terminal(str(path.parent / CONFIG_FILE))} does not fit {path.name} ({', '.join(wrong)}): "
            "restore config.json or re-save the model"
        )


@lru_cache(maxsize=4)
def _load_cached(path: str | None) -> "SpeechEmbedding":
    return SpeechEmbedding.from_pretrained(path)


def load_model(path: str | Path | None = None) -> "SpeechEmbedding":
    """`SpeechEmbedding.from_pretrained`, once per model directory per process.

    Loading takes seconds and hundreds of MB; integrations that build many objects over
    one model share it through this.
    """
    return _load_cached(str(Path(path).expanduser().resolve()) if path else None)


class UntrainedModelWarning(UserWarning):
    """The speech tower is untrained or experimental: its vectors do not retrieve reliably yet."""


class SpeechEmbedding(nn.Module):
    """Embeds spoken queries and text passages into one space of dimension `config.dim`.

    Args:
        config: Architecture and base-model names.
        trained: False for randomly initialised heads; such a model warns on every load.
    """

    def __init__(self, config: SealConfig, trained: bool = True, name: str = "seal-untrained",
                 model_dir: Path | None = None):
        """`model_dir`: the folder `config` was read from; base-model paths in it are relative to it."""
        super().__init__()
        self.config = config
        self.trained = trained
        self.name = name
        sentence_model = load_sentence_model(beside(config.text_model, model_dir))
        base_dim = sentence_model.get_embedding_dimension()
        if base_dim != config.text_dim:
            raise ModelLoadError(
                f"text model {config.text_model!r} gives {base_dim}-d vectors but the config says text_dim={config.text_dim}: "
                "fix text_dim or the model name"
            )
        # The scaling layer is shared by both towers: it is what puts them in one space.
        self.scaling = nn.Linear(config.text_dim, config.dim)
        with torch.no_grad():
            torch.manual_seed(UNTRAINED_SEED)
            if config.dim == config.text_dim:
                # Start as the identity, so the text tower starts as the sentence model.
                self.scaling.weight.copy_(torch.eye(config.dim))
                self.scaling.bias.zero_()
        self.speech = SpeechTower(config, load_whisper_encoder(beside(config.whisper_model, model_dir)), self.scaling, sentence_model)
        self.text = TextTower(sentence_model, self.scaling)
        self.phonetic = (PhoneticHalf(config.phonetic_dim, self.speech.encoder.d_model, _soft(config),
                                      config.phonetic_recognizers)
                         if config.phonetic_dim else None)
        from .whisper_int8 import can_encode_with_ct2

        # Which encoder hears spoken queries: "int8" (CTranslate2) where it gives this model's states, else "torch".
        self.query_encoder = "int8" if can_encode_with_ct2(config) else "torch"
        self._int8 = None  # the CTranslate2 encoder, loaded on the first spoken query
        self.eval()

    def __getstate__(self) -> dict:
        # A copy (`seal-rag adapt` tunes one) loads its own CTranslate2 encoder on first use: the
        # loaded one holds a C++ model that cannot be copied or pickled.
        return {**self.__dict__, "_int8": None}

    @property
    def dim(self) -> int:
        return self.config.dim + self.config.phonetic_dim

    # ---- loading and saving -------------------------------------------------------

    @classmethod
    def from_pretrained(cls, path: str | Path | None = None, name: str | None = None) -> "SpeechEmbedding":
        """Load a model directory, or the default model shipped in the package.

        With no shipped weights, returns an untrained model and warns loudly. `name` (shown in
        warnings, errors and index stamps) defaults to the directory's name.
        """
        if path is None:
            path = MODELS_DIR / DEFAULT_MODEL
            if not (path / WEIGHTS_FILE).is_file():
                return cls.untrained()
        path = Path(path)
        if not (path / CONFIG_FILE).is_file() or not (path / WEIGHTS_FILE).is_file():
            raise ModelLoadError(f"{path} is not a seal-rag model directory: it needs {CONFIG_FILE} and {WEIGHTS_FILE}")
        config = SealConfig.load(path / CONFIG_FILE)
        # An experimental checkpoint is trained, but not yet good enough to stand in for
        # the cascade: callers that choose a mode by `trained` treat it as untrained.
        _check_sizes(config, path / WEIGHTS_FILE)
        model = cls(config, trained=config.status == "released", name=name or path.resolve().name, model_dir=path)
        model._load_trainable(_read_weights(path / WEIGHTS_FILE), path)
        if config.status == "experimental":
            warnings.warn(
                f"seal-rag: the speech tower {model.name!r} is an EXPERIMENTAL checkpoint, far below the cascade on "
                f"validation (see {path / 'README.md'}); prefer mode 'cascade' for real use.",
                UntrainedModelWarning,
                stacklevel=2,
            )
        return model

    @classmethod
    def untrained(cls, config: SealConfig | None = None) -> "SpeechEmbedding":
        """A model with freshly initialised heads, for training from scratch."""
        warnings.warn(
            "seal-rag: the speech tower is UNTRAINED (random weights); spoken queries will not retrieve "
            "meaningful results. Train one with `make train` or load a trained model directory.",
            UntrainedModelWarning,
            stacklevel=2,
        )
        return cls(config or SealConfig(), trained=False)

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """The weights a checkpoint holds: adapter, MLP, pooling, scaling, unfrozen layers and the phonetic half."""
        names = {name for name, p in self.named_parameters() if p.requires_grad}
        return {k: v.detach().contiguous() for k, v in self.state_dict().items() if k in names or k.startswith("phonetic.")}

    def save_pretrained(self, path: str | Path) -> None:
        """Write `config.json` and `model.safetensors` (trainable parts only)."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.config.save(path / CONFIG_FILE)
        save_file(self.trainable_state_dict(), path / WEIGHTS_FILE, metadata={"format": "pt"})

    def _load_trainable(self, state: dict[str, torch.Tensor], path: Path) -> None:
        expected = {k: v.shape for k, v in self.trainable_state_dict().items()}
        missing = sorted(set(expected) - set(state))
        unexpected = sorted(set(state) - set(expected))
        wrong = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(expected[k])}" for k in expected.keys() & state.keys()
                 if state[k].shape != expected[k]]
        if missing or unexpected or wrong:
            raise ModelLoadError(
                f"{path / WEIGHTS_FILE} does not match its config: missing {missing[:3]}, unexpected {unexpected[:3]}, "
                f"wrong shapes {wrong[:3]}; re-save the model or fix config.json"
            )
        self.load_state_dict(state, strict=False)

    @property
    def fingerprint(self) -> str:
        """A short hash of the base-model names and all trained weights."""
        return _model_digest(self.config, self.trainable_state_dict())

    @property
    def space_fingerprint(self) -> str:
        """A short hash of what fixes the text-side space: text model, D and scaling weights.

        An index records this. Speech-side changes (such as a per-index adapter) keep it, so
        they can query the same index; a different text model or scaling cannot.
        """
        state = {k: v for k, v in self.trainable_state_dict().items() if k.startswith(("scaling.", "phonetic.idf"))}
        phonetic = f"|{self.config.phonetic_dim}|{self.config.phonetic_weight}" if self.phonetic else ""
        return _digest(f"{self.config.text_model}|{self.config.dim}{phonetic}", state)

    # ---- embedding ----------------------------------------------------------------

    @torch.no_grad()
    def embed_audio(
        self,
        sources: Sequence[AudioSource] | AudioSource,
        sample_rate: int = SAMPLE_RATE,
        pad_to_window: bool = False,
    ) -> np.ndarray:
        """Embed spoken queries.

        The same two forms as the integrations' `embed_audio` / `get_audio_embedding`: one clip,
        or a list of clips. Like `embed_texts`, this always returns a batch (one row per clip).

        Args:
            sources: Paths, encoded bytes or sample arrays (or one of them).
            sample_rate: Rate of sample arrays; files and bytes carry their own.
            pad_to_window: Pad to 30 s as the SEAL paper does (slower; for comparison).

        Returns:
            `(n, dim)` float32, unit norm.

        Raises:
            AudioError: a clip is unusable, or an input is neither a clip nor a list of clips.
        """
        sources, _ = audio_batch(sources)
        clips = [load_audio(s, sample_rate, self.config.max_seconds) for s in sources]
        return self.embed_clips(clips, pad_to_window)

    @torch.no_grad()
    def embed_clips(self, clips: list[np.ndarray], pad_to_window: bool = False, timings: dict[str, float] | None = None) -> np.ndarray:
        """Embed already-loaded 16 kHz mono clips (see `audio.load_audio`): `(n, dim)` float32, unit norm.

        The one staged encode of the speech path: log-mel features, then Whisper's encoder and
        the heads. Pass a dict as `timings` to get each stage's seconds ("features", "encode").
        """
        return self.encode_clips(clips, pad_to_window, timings)[0]

    @torch.no_grad()
    def encode_clips(self, clips: list[np.ndarray], pad_to_window: bool = False,
                     timings: dict[str, float] | None = None, semantic: bool = True) -> tuple[np.ndarray, list[np.ndarray] | None]:
        """`embed_clips`, and the phoneme recognizer's `(steps, classes)` logits per clip (None without
        a phonetic half), which keyword re-ranking reads (`keyword_rerank`). `semantic=False`: see `heads`."""
        states = self.encode_queries(clips, pad_to_window, timings)
        with timed(timings, "encode"):  # the heads count as encoding: they run on the encoder's states
            return self.heads(states, semantic)

    @torch.no_grad()
    def encode_queries(self, clips: list[np.ndarray], pad_to_window: bool = False,
                       timings: dict[str, float] | None = None) -> list[torch.Tensor]:
        """Whisper encoder states of spoken queries, one `(positions, d_model)` tensor per clip.

        CTranslate2's int8 encoder when it gives this model's states (`query_encoder == "int8"`):
        about 3 times faster than fp32 torch, at equal accuracy (validation, piper voices, soft
        decoding: Top-1 0.585 / 0.583 clean / noisy against 0.575 / 0.570 for fp32; every demo
        question's gold passage stays first). The heads were trained on int8 states.
        """
        if self.query_encoder != "int8" or pad_to_window:
            return self.speech.encode_clips(clips, pad_to_window, timings)
        if self._int8 is None:
            from .whisper_int8 import Ct2WhisperEncoder

            self._int8 = Ct2WhisperEncoder(torch.get_num_threads())
        with timed(timings, "features"):
            features = [self._int8.features(clip) for clip in clips]
        with timed(timings, "encode"):
            return [torch.from_numpy(self._int8.encode(mels)) for mels in features]

    @torch.no_grad()
    def embed_states(self, states: list[torch.Tensor]) -> np.ndarray:
        """Whisper encoder states per clip (`speech.encode_clips`) -> `(n, dim)` query vectors."""
        return self.heads(states)[0]

    @torch.no_grad()
    def heads(self, states: list[torch.Tensor], semantic: bool = True) -> tuple[np.ndarray, list[np.ndarray] | None]:
        """Encoder states per clip (`encode_queries`) -> query vectors and recognizer logits, as `encode_clips`.
        `semantic=False` leaves the speech tower's semantic half out (zeros: the vectors are then not unit
        norm), for a caller that spells its own (`KBDecoder.query_vector`)."""
        if semantic or self.phonetic is None:
            semantic = self.speech.embed_states(states).numpy()
        else:
            semantic = np.zeros((len(states), self.config.dim), np.float32)
        if self.phonetic is None:
            return semantic.astype(np.float32), None
        logits = self.phonetic.logits(states)
        return self._join(semantic, self.phonetic.vectors_from_logits(logits, self.phonetic.soft)), logits

    def join(self, semantic: np.ndarray, phonetic: np.ndarray) -> np.ndarray:
        """Semantic `(n, config.dim)` and phonetic `(n, config.phonetic_dim)` halves, each unit norm ->
        joined vectors `(n, dim)`, as `embed_*` joins them: the inverse of `split`. Raises ValueError
        for a model without a phonetic half."""
        if self.phonetic is None:
            raise ValueError(f"{self.name} has no phonetic half: its vectors are the semantic half alone")
        return self._join(semantic, phonetic)

    def _join(self, semantic: np.ndarray, phonetic: np.ndarray) -> np.ndarray:
        # Both halves are unit vectors, so the joined vector is one too, and its cosine with
        # another is (1 - w) * semantic cosine + w * phonetic cosine.
        w = self.config.phonetic_weight
        return np.concatenate([semantic * np.sqrt(1 - w), phonetic * np.sqrt(w)], axis=1).astype(np.float32)

    def weighted(self, semantic: np.ndarray, phonetic: np.ndarray, weight: float) -> np.ndarray:
        """A query's halves (each unit norm) -> unit vectors whose cosine with a passage's joined vector
        ranks passages by `(1 - weight) * semantic cosine + weight * phonetic cosine`, whatever the
        model's own `phonetic_weight`: the passages' vectors stay as indexed. (The cosine is that
        sum divided by a constant of the query, its norm before normalising; with `weight` equal
        to `phonetic_weight` it is `join`.)"""
        w = self.config.phonetic_weight
        out = np.concatenate([semantic * ((1 - weight) / np.sqrt(1 - w)), phonetic * (weight / np.sqrt(w))], axis=1)
        return (out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)).astype(np.float32)  # zeros stay zeros

    @torch.no_grad()
    def text_semantic(self, texts: list[str]) -> np.ndarray:
        """The text tower's semantic half of `texts`, `(n, dim)` unit vectors (`embed_texts` without the phonetic half)."""
        return self.text.project(self.text.encode_base(texts)).numpy()

    def split(self, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Joined vectors `(n, dim)` -> their semantic and phonetic halves, each unit norm again.

        The inverse of how `embed_*` joins them, so a half can be scored alone. Raises
        ValueError for a model without a phonetic half (its vectors are all semantic).
        """
        if self.phonetic is None:
            raise ValueError(f"{self.name} has no phonetic half: its vectors are the semantic half alone")
        w, d = self.config.phonetic_weight, self.config.dim
        return vectors[:, :d] / np.sqrt(1 - w), vectors[:, d:] / np.sqrt(w)

    @torch.no_grad()
    def embed_texts(self, texts: Sequence[str] | str, batch_size: int = 64, show_progress: bool = False,
                    phonemes: Sequence[str] | None = None) -> np.ndarray:
        """Embed passages or questions with the text tower: `(n, dim)` float32, unit norm.
        `phonemes`: the texts' `phonetic.phonemize`d forms, if the caller made them already (ingest keeps them)."""
        if isinstance(texts, str):
            texts = [texts]
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        texts = check_texts(texts)
        base = self.text.encode_base(list(texts), batch_size, show_progress)
        semantic = self.text.project(base).numpy()
        if self.phonetic is None:
            return semantic.astype(np.float32)
        return self._join(semantic, self.phonetic.embed_texts(list(texts), None if phonemes is None else list(phonemes)))

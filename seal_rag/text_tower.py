"""The text tower: a sentence-transformers model -> its pooling -> the shared scaling layer."""

from __future__ import annotations

import copy
import threading
import warnings

import torch
from torch import nn

from .errors import ModelLoadError
from .model_sources import text_model_path
from .safe_text import for_terminal, one_line


def load_sentence_model(name: str):
    """Load a sentence-transformers model on the CPU, offline for anything on disk."""
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a weight-loading bar on every start is noise
    path, local_only = text_model_path(name)
    try:
        return SentenceTransformer(path, device="cpu", local_files_only=local_only)
    except (OSError, ValueError) as error:
        raise ModelLoadError(
            f"cannot load text model {for_terminal(repr(name))} ({one_line(error)}): use 'all-MiniLM-L6-v2' (shipped) or a local sentence-transformers dir"
        ) from None


def hardware_bf16() -> bool:
    """Whether this CPU multiplies bf16 matrices in hardware (AMX or AVX-512 BF16).

    There the sentence model runs about 2.5 times faster in bf16 (MiniLM on 2 idle cores, 256
    chunks a call: ~125 against ~48 chunks a second), and its embeddings stay within cosine
    0.9999 of fp32 (`seal-rag bench ingest` prints the least cosine it saw), so vectors keep the
    space's fingerprint. Elsewhere bf16 would be emulated and slower: fp32 stays.
    """
    cpu = torch.cpu
    return any(getattr(cpu, probe, lambda: False)() for probe in ("_is_amx_tile_supported", "_is_avx512_bf16_supported"))


_TWIN_LOCK = threading.Lock()  # module-wide: a lock held by the tower would stop it being copied or pickled


class TextTower(nn.Module):
    """Texts -> unit vectors in the shared space. The sentence model itself stays frozen.

    `bf16` (default: `hardware_bf16()`) runs a bf16 copy of the sentence model (`bf16_twin`);
    set it False for plain fp32.
    """

    def __init__(self, sentence_model, scaling: nn.Linear):
        super().__init__()
        # Kept outside the module tree: its weights belong to the base model, not to
        # the seal-rag checkpoint.
        self.__dict__["sentence_model"] = sentence_model
        self.scaling = scaling
        self.bf16 = hardware_bf16()

    @property
    def base_dim(self) -> int:
        return self.sentence_model.get_embedding_dimension()

    @torch.no_grad()
    def encode_base(self, texts: list[str], batch_size: int = 64, show_progress: bool = False) -> torch.Tensor:
        """The sentence model's own pooled embeddings, `(n, text_dim)` float32: the stage-1 targets."""
        twin = self._bf16_twin() if self.bf16 else None
        # Autocast only for a model without a transformer module to cast; disabled, it also keeps
        # the fp32 path fp32 under a caller's autocast.
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16 and twin is None):
            model = twin if twin is not None else self.sentence_model
            return model.encode(texts, batch_size=batch_size, convert_to_tensor=True, show_progress_bar=show_progress).float()

    def _bf16_twin(self):
        """`bf16_twin` of the sentence model, made once on first use, whichever thread asks first
        (the service embeds from several); kept outside the module tree, as the model itself."""
        if "_bf16" not in self.__dict__:
            with _TWIN_LOCK:
                if "_bf16" not in self.__dict__:
                    self.__dict__["_bf16"] = bf16_twin(self.sentence_model)
        return self.__dict__["_bf16"]

    def project(self, base: torch.Tensor) -> torch.Tensor:
        """Apply the shared scaling layer to sentence embeddings."""
        return nn.functional.normalize(self.scaling(base), dim=-1)

    @property
    def max_tokens(self) -> int:
        """Word pieces the sentence model reads; it silently drops the rest (256 for MiniLM)."""
        return self.sentence_model.max_seq_length

    def overlong(self, texts: list[str]) -> int:
        """How many of `texts` are longer than `max_tokens`, so only their start is embedded."""
        limit = self.max_tokens
        # A word piece spans at least one character: shorter texts cannot pass the limit.
        long = [text for text in texts if len(text) + 2 > limit]
        if not long:
            return 0
        pieces = self.sentence_model.tokenizer(long, add_special_tokens=True, verbose=False)["input_ids"]
        return sum(len(ids) > limit for ids in pieces)


def bf16_twin(sentence_model):
    """A copy of `sentence_model` whose transformer holds bf16 weights and hands fp32 token states
    on, or None if its first module is not a transformer.

    Weights stored in bf16 run about 1.1 times faster than bf16 autocast, which casts every
    layer's activations back and forth; the token states are pooled in fp32, which keeps the
    embeddings within cosine 0.9999 of fp32 (least 0.99991 over 1,000 chunks). The tokenizer is
    shared, not copied.
    """
    from sentence_transformers.models import Transformer

    if not isinstance(sentence_model[0], Transformer):
        return None
    tokenizer = sentence_model.tokenizer
    twin = copy.deepcopy(sentence_model, {id(tokenizer): tokenizer})
    twin[0].to(torch.bfloat16)
    twin[0].register_forward_hook(_token_states_to_fp32)
    return twin


def _token_states_to_fp32(module, inputs, features: dict) -> dict:
    features["token_embeddings"] = features["token_embeddings"].float()  # pooling and what follows run in fp32
    return features


class TruncatedTextWarning(UserWarning):
    """A passage is longer than the text tower reads: its semantic half sees only the start."""


def warn_if_truncated(tower: TextTower, texts: list[str]) -> None:
    """Warn (once per call site) when passages pass the text tower's token limit.

    LlamaIndex splits documents into 1,024-token chunks by default, four times what MiniLM
    reads; seal-rag's own chunks (1,000 characters, about 200 tokens of English) fit.
    """
    if tower.overlong(texts):
        warnings.warn(
            f"seal-rag: some passages are longer than the text tower's {tower.max_tokens} tokens; their semantic half "
            "embeds only the start. Chunk smaller: SealReader / SealDocumentLoader (seal-rag's 1,000-character chunks), "
            "or a splitter with chunk_size=200 tokens",
            TruncatedTextWarning,
            stacklevel=3,
        )

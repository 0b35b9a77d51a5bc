"""The text tower: a sentence-transformers model -> its pooling -> the shared scaling layer."""

from __future__ import annotations

import torch
from torch import nn

from .errors import ModelLoadError
from .model_sources import text_model_path


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
            f"cannot load text model {name!r} ({error}): use 'all-MiniLM-L6-v2' (shipped) or a local sentence-transformers dir"
        ) from None


class TextTower(nn.Module):
    """Texts -> unit vectors in the shared space. The sentence model itself stays frozen."""

    def __init__(self, sentence_model, scaling: nn.Linear):
        super().__init__()
        # Kept outside the module tree: its weights belong to the base model, not to
        # the seal-rag checkpoint.
        self.__dict__["sentence_model"] = sentence_model
        self.scaling = scaling

    @property
    def base_dim(self) -> int:
        return self.sentence_model.get_embedding_dimension()

    @torch.no_grad()
    def encode_base(self, texts: list[str], batch_size: int = 64, show_progress: bool = False) -> torch.Tensor:
        """The sentence model's own pooled embeddings, `(n, text_dim)`: the stage-1 targets."""
        return self.sentence_model.encode(
            texts, batch_size=batch_size, convert_to_tensor=True, show_progress_bar=show_progress
        ).float()

    def project(self, base: torch.Tensor) -> torch.Tensor:
        """Apply the shared scaling layer to sentence embeddings."""
        return nn.functional.normalize(self.scaling(base), dim=-1)

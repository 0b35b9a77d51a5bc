"""The trainable part of the speech tower, run on cached (pooled) encoder states, and its export.

Caching mean-pools the encoder states over `pool` positions. A Conv1D adapter with kernel k
and stride s over pooled states equals, exactly, a Conv1D with kernel `pool*k` and stride
`pool*s` over the raw states whose weights repeat each tap `pool` times divided by `pool`.
So training runs on pooled states and `export` writes an ordinary `SealConfig` model that
`SpeechEmbedding.from_pretrained` loads with no change to `seal_rag`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from torch import nn

from seal_rag import SealConfig
from seal_rag.speech_tower import SpeechHead

D_MODEL = 512  # Whisper-base encoder width


def seal_config(model_section: dict) -> SealConfig:
    """The released architecture, from a config's [model] table."""
    return SealConfig(**model_section)


def pooled_config(config: SealConfig, pool: int) -> SealConfig:
    """The same head, seen from states already pooled by `pool`."""
    if config.adapter_kernel % pool or config.adapter_stride % pool:
        raise ValueError(f"adapter kernel {config.adapter_kernel} and stride {config.adapter_stride} must be multiples of pool={pool}")
    return dataclasses.replace(config, adapter_kernel=config.adapter_kernel // pool, adapter_stride=config.adapter_stride // pool)


class HeadModel(nn.Module):
    """Adapter, MLP, pooling and the shared scaling layer, on pooled states.

    `forward` returns the head's output before scaling, `(batch, text_dim)`; stage 1 aligns
    it with the text model's own embedding, and `embed` applies the scaling for retrieval.
    With `bf16`, training steps run the head under bfloat16 autocast (see `forward`).
    """

    def __init__(self, config: SealConfig, pool: int, sentence_model=None, bf16: bool = False):
        super().__init__()
        self.config, self.pool, self.bf16 = config, pool, bf16
        if config.token_level and sentence_model is None:  # the text model reads this head
            from seal_rag.text_tower import load_sentence_model

            sentence_model = load_sentence_model(config.text_model)
        self.head = SpeechHead(pooled_config(config, pool), D_MODEL, sentence_model)
        self.scaling = nn.Linear(config.text_dim, config.dim)
        with torch.no_grad():  # identity, as SpeechEmbedding starts
            self.scaling.weight.copy_(torch.eye(config.dim, config.text_dim))
            self.scaling.bias.zero_()

    def forward(self, states: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        # The head's matrix products are a step's cost, so only they run in bf16, and only while
        # training: the losses, validation and the export stay fp32, as the shipped model runs.
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16 and self.training):
            out = self.head(states, lengths)
        return out.float()  # (batch, text_dim)

    def embed(self, states: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(self.scaling(self(states, lengths)), dim=-1)  # (batch, dim)

    def project_text(self, base: torch.Tensor) -> torch.Tensor:
        """The text tower's projection of the text model's embeddings, `(n, dim)` unit vectors."""
        return nn.functional.normalize(self.scaling(base), dim=-1)

    def released_state(self) -> dict[str, torch.Tensor]:
        """Weights under `SpeechEmbedding`'s names, with the adapter expanded to raw-state taps."""
        weight = self.head.adapter.weight.detach()  # (out, d_model, k)
        expanded = weight.repeat_interleave(self.pool, dim=2) / self.pool  # (out, d_model, pool*k)
        state = {"scaling." + k: v.detach() for k, v in self.scaling.state_dict().items()}
        for name, value in self.head.state_dict().items():
            state["speech.head." + name] = value.detach()
        state["speech.head.adapter.weight"] = expanded
        return {k: v.contiguous().clone() for k, v in state.items()}

    def load_released(self, model_dir: str | Path) -> dict[str, torch.Tensor]:
        """The inverse of `released_state`: a released model directory's weights under this
        model's names, with the adapter's repeated raw-state taps folded back to pooled ones."""
        from safetensors.torch import load_file

        from seal_rag.embedding import WEIGHTS_FILE

        released = load_file(str(Path(model_dir) / WEIGHTS_FILE))
        state = {k[len("speech."):]: v for k, v in released.items() if k.startswith("speech.head.")}
        state |= {k: v for k, v in released.items() if k.startswith("scaling.")}
        taps = state["head.adapter.weight"]  # (out, d_model, pool*k), each tap repeated pool times
        state["head.adapter.weight"] = taps[:, :, :: self.pool] * self.pool
        return state


def export(model: HeadModel, out_dir: str | Path):
    """Write a `SpeechEmbedding` model directory (`config.json` + `model.safetensors`); returns it loaded."""
    from seal_rag import SpeechEmbedding

    embedding = SpeechEmbedding(model.config, trained=True, name=Path(out_dir).name)
    embedding._load_trainable(model.released_state(), Path(out_dir))
    embedding.save_pretrained(out_dir)
    return embedding

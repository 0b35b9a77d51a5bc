"""The trainable part of the speech tower, run on cached (pooled) encoder states, and its export.

Caching mean-pools the encoder states over `pool` positions. A Conv1D adapter with kernel k
and stride s over pooled states equals, exactly, a Conv1D with kernel `pool*k` and stride
`pool*s` over the raw states whose weights repeat each tap `pool` times divided by `pool`.
So training runs on pooled states and `export` writes an ordinary `SealConfig` model that
`SpeechEmbedding.from_pretrained` loads with no change to `seal_rag`.

To tune Whisper's top n layers (`trainable_encoder_layers`), the cache holds the states
below them instead (`[data] below_top`), and `EncoderTop` runs those layers, the final layer
norm and the pooling before the head; the export then carries the tuned layers too.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from torch import nn

from seal_rag import SealConfig
from seal_rag.speech_tower import SpeechHead
from seal_rag.whisper_torch import lengths_to_mask

D_MODEL = 512  # Whisper-base encoder width


def seal_config(model_section: dict) -> SealConfig:
    """The released architecture, from a config's [model] table."""
    fields = {f.name for f in dataclasses.fields(SealConfig)}
    unknown = sorted(set(model_section) - fields)
    if unknown:
        raise SystemExit(f"error: [model] has no setting {', '.join(unknown)}: see seal_rag/config.py's SealConfig for the names")
    return SealConfig(**model_section)


def pooled_config(config: SealConfig, pool: int) -> SealConfig:
    """The same head, seen from states already pooled by `pool`."""
    if config.adapter_kernel % pool or config.adapter_stride % pool:
        raise SystemExit(f"error: [model] adapter_kernel {config.adapter_kernel} and adapter_stride {config.adapter_stride} "
                         f"must be multiples of [data] pool = {pool}")
    return dataclasses.replace(config, adapter_kernel=config.adapter_kernel // pool, adapter_stride=config.adapter_stride // pool)


class EncoderTop(nn.Module):
    """Whisper's top `count` encoder layers and final layer norm, then the mean-pool by `pool`
    that caching does otherwise (zero-padded at the end, as `training.cache.pool_states`).
    The bottom ones of them stay frozen unless `trainable` reaches them."""

    def __init__(self, whisper_model: str, count: int, trainable: int, pool: int):
        super().__init__()
        from seal_rag.whisper_torch import load_whisper_encoder

        encoder = load_whisper_encoder(whisper_model).encoder
        self.first = len(encoder.layers) - count  # the first one's index in the whole encoder
        self.layers, self.layer_norm, self.pool = nn.ModuleList(encoder.layers[self.first :]), encoder.layer_norm, pool
        self.requires_grad_(False)
        for layer in self.layers[count - trainable :]:
            layer.requires_grad_(True)
        self.layer_norm.requires_grad_(trainable > 0)

    def forward(self, states: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mask = lengths_to_mask(lengths, states.shape[1])
        additive = torch.zeros(mask.shape, dtype=states.dtype).masked_fill(~mask, torch.finfo(states.dtype).min)[:, None, None, :]
        for layer in self.layers:
            states = layer(states, additive)
        states = self.layer_norm(states) * mask[..., None]
        states = nn.functional.pad(states, (0, 0, 0, (-states.shape[1]) % self.pool))
        pooled = states.reshape(states.shape[0], -1, self.pool, states.shape[2]).mean(dim=2)
        return pooled, (lengths + self.pool - 1) // self.pool

    def released_state(self) -> dict[str, torch.Tensor]:
        """The trainable layers under `SpeechEmbedding`'s names (the frozen ones are Whisper's own)."""
        state = {}
        for offset, layer in enumerate(self.layers):
            if next(layer.parameters()).requires_grad:
                for name, value in layer.state_dict().items():
                    state[f"speech.encoder.encoder.layers.{self.first + offset}.{name}"] = value
        if self.layer_norm.weight.requires_grad:
            state |= {f"speech.encoder.encoder.layer_norm.{k}": v for k, v in self.layer_norm.state_dict().items()}
        return state


class HeadModel(nn.Module):
    """Adapter, MLP, pooling and the shared scaling layer, on pooled states.

    `forward` returns the head's output before scaling, `(batch, text_dim)`; stage 1 aligns
    it with the text model's own embedding, and `embed` applies the scaling for retrieval.
    With `bf16`, training steps run the head under bfloat16 autocast (see `forward`).
    """

    def __init__(self, config: SealConfig, pool: int, sentence_model=None, bf16: bool = False, below_top: int = 0):
        super().__init__()
        self.config, self.pool, self.bf16 = config, pool, bf16
        if config.trainable_encoder_layers > below_top:
            raise SystemExit(f"error: trainable_encoder_layers = {config.trainable_encoder_layers} needs states cached below "
                             f"that many layers: set [data] below_top = {config.trainable_encoder_layers} and a new cache_dir, then cache")
        self.encoder_top = EncoderTop(config.whisper_model, below_top, config.trainable_encoder_layers, pool) if below_top else None
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
            out = self.head(*self.head_input(states, lengths))
        return out.float()  # (batch, text_dim)

    def head_input(self, states: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Cached states as the head takes them: pooled top-layer states (see `EncoderTop`)."""
        return self.encoder_top(states, lengths) if self.encoder_top is not None else (states, lengths)

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
        if self.encoder_top is not None:
            state |= self.encoder_top.released_state()
        return {k: v.detach().contiguous().clone() for k, v in state.items()}

    def load_released(self, model_dir: str | Path) -> dict[str, torch.Tensor]:
        """The inverse of `released_state`: a released model directory's weights under this
        model's names, with the adapter's repeated raw-state taps folded back to pooled ones."""
        from safetensors.torch import load_file

        from seal_rag.embedding import WEIGHTS_FILE

        released = load_file(str(Path(model_dir) / WEIGHTS_FILE))
        state = {k[len("speech."):]: v for k, v in released.items() if k.startswith("speech.head.")}
        state |= {k: v for k, v in released.items() if k.startswith("scaling.")}
        if self.encoder_top is not None:  # tuned encoder layers, if the directory has any
            for offset in range(len(self.encoder_top.layers)):
                prefix = f"speech.encoder.encoder.layers.{self.encoder_top.first + offset}."
                state |= {f"encoder_top.layers.{offset}.{k[len(prefix):]}": v for k, v in released.items() if k.startswith(prefix)}
            prefix = "speech.encoder.encoder.layer_norm."
            state |= {f"encoder_top.layer_norm.{k[len(prefix):]}": v for k, v in released.items() if k.startswith(prefix)}
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

"""The speech tower: Whisper encoder -> Conv1D adapter -> [context layers] -> MLP -> pooling -> shared scaling.

Only the head after the encoder (and any unfrozen top encoder layers) is trained, so the
head also accepts cached encoder outputs: training then costs an epoch of the head only.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
from torch import nn

from .audio import log_mel, split_windows
from .config import CONTEXT_HEAD_DIM, SealConfig
from .timing import timed
from .whisper_torch import RealLengthWhisperEncoder, lengths_to_mask


def pad_batch(sequences: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """`[(len_i, d)]` -> zero-padded `(batch, max_len, d)` and `(batch,)` lengths."""
    lengths = torch.tensor([s.shape[0] for s in sequences])
    return nn.utils.rnn.pad_sequence(sequences, batch_first=True), lengths


def sinusoid_positions(steps: int, dim: int) -> torch.Tensor:
    """The transformer's fixed position code, `(steps, dim)`: nothing to learn, any length."""
    position = torch.arange(steps, dtype=torch.float32)[:, None]
    frequency = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    code = torch.zeros(steps, dim)
    code[:, 0::2], code[:, 1::2] = torch.sin(position * frequency), torch.cos(position * frequency)
    return code


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The sentence model's own pooling: the mean of `(batch, tokens, dim)` over the `mask`ed tokens."""
    weights = mask.float() / mask.sum(dim=1, keepdim=True)
    return torch.einsum("bt,btd->bd", weights, hidden)


class ContextLayers(nn.Module):
    """Pre-norm transformer layers over the adapter's steps, blind to padding.

    Each layer's output projections and the position code's gain start at zero, so a new
    stack is the identity and the head it is added to starts exactly where it was.
    """

    def __init__(self, dim: int, layers: int):
        super().__init__()
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(dim, dim // CONTEXT_HEAD_DIM, 2 * dim, dropout=0.1, activation="gelu",
                                       batch_first=True, norm_first=True)
            for _ in range(layers)
        )
        for layer in self.layers:
            for projection in (layer.self_attn.out_proj, layer.linear2):
                nn.init.zeros_(projection.weight)
                nn.init.zeros_(projection.bias)
        self.position_gain = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = x + self.position_gain * sinusoid_positions(x.shape[1], x.shape[2]).to(x)
        for layer in self.layers:
            x = layer(x, src_key_padding_mask=~mask)
        return x


class TokenReader(nn.Module):
    """The frozen text transformer reading the head's positions as tokens (`token_level`).

    The head's output at each position goes in as `inputs_embeds` after a [CLS] embedding
    (the transformer adds its own position embeddings), and the transformer's mean pool is
    the clip's vector: the text model does the semantics, the head maps sound to tokens.
    """

    def __init__(self, sentence_model, tuned_layers: int = 0):
        super().__init__()
        transformer = sentence_model[0].auto_model.eval().requires_grad_(False)
        if tuned_layers:
            # The speech side tunes its own copy of the bottom layers, which read the head's
            # pseudo-tokens; the text tower keeps the original, so indexed passages do not move.
            transformer = copy.deepcopy(transformer)
            self.tuned = nn.ModuleList(transformer.encoder.layer[:tuned_layers]).requires_grad_(True)
        # Outside the module tree, as in the text tower: the frozen weights belong to the base
        # model, so they stay out of checkpoints and optimizers, and stay in eval mode. Tuned
        # layers are the same modules, registered above, so they are saved and trained.
        self.__dict__["transformer"] = transformer
        cls = transformer.embeddings.word_embeddings.weight[sentence_model.tokenizer.cls_token_id]
        self.register_buffer("cls", cls.detach().clone(), persistent=False)

    @property
    def max_steps(self) -> int:
        """Most head positions one read takes: the text model's position table, less the [CLS] slot."""
        return self.transformer.config.max_position_embeddings - 1

    def layer_means(self, positions: torch.Tensor, mask: torch.Tensor, every_layer: bool = False) -> list[torch.Tensor]:
        """The mean pool of the transformer's last layer, `[(batch, dim)]`, or with
        `every_layer` of its embedding layer and each layer in turn (training reads those)."""
        if positions.shape[1] > self.max_steps:
            return self._windowed_means(positions, mask, every_layer)
        return self._read(positions, mask, every_layer)

    def _read(self, positions: torch.Tensor, mask: torch.Tensor, every_layer: bool) -> list[torch.Tensor]:
        batch = positions.shape[0]
        tokens = torch.cat([self.cls.expand(batch, 1, -1), positions], dim=1)
        mask = torch.cat([torch.ones(batch, 1, dtype=torch.bool, device=mask.device), mask], dim=1)
        out = self.transformer(inputs_embeds=tokens, attention_mask=mask.long(), output_hidden_states=every_layer)
        return [mean_pool(h, mask) for h in (out.hidden_states if every_layer else [out.last_hidden_state])]

    def _windowed_means(self, positions: torch.Tensor, mask: torch.Tensor, every_layer: bool) -> list[torch.Tensor]:
        """A question longer than the text model's 512 positions (about 80 s of speech), read in
        equal windows that each fit, as the encoder reads audio past 30 s; each clip's vector is
        the mean of its windows' pools weighted by their tokens, the pool a single read would take."""
        pieces, owners = [], []
        for row, length in enumerate(mask.sum(dim=1).tolist()):
            count = max(1, math.ceil(length / self.max_steps))
            for piece in torch.tensor_split(positions[row, :length], count):
                pieces.append(piece)
                owners.append(row)
        padded, lengths = pad_batch(pieces)
        means = self._read(padded, lengths_to_mask(lengths, padded.shape[1]), every_layer)
        weights = (lengths + 1).to(positions.dtype)  # each window's tokens, its [CLS] included
        owner = torch.tensor(owners)
        out = []
        for layer in means:
            total = torch.zeros(positions.shape[0], layer.shape[1], dtype=layer.dtype).index_add_(0, owner, layer * weights[:, None])
            norm = torch.zeros(positions.shape[0], dtype=layer.dtype).index_add_(0, owner, weights)
            out.append(total / norm[:, None])
        return out

    def forward(self, positions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.layer_means(positions, mask)[-1]


class SpeechHead(nn.Module):
    """Adapter, context layers, MLP and pooling: encoder states `(batch, positions, d_model)` -> `(batch, text_dim)`."""

    def __init__(self, config: SealConfig, d_model: int, sentence_model=None):
        super().__init__()
        if config.token_level and sentence_model is None:
            raise ValueError("a token-level head needs the sentence model that reads it")
        self.kernel, self.stride = config.adapter_kernel, config.adapter_stride
        self.adapter = nn.Conv1d(d_model, config.adapter_dim, self.kernel, self.stride)
        self.context = ContextLayers(config.adapter_dim, config.context_layers) if config.context_layers else None
        self.mlp = nn.Sequential(
            nn.Linear(config.adapter_dim, config.mlp_hidden),
            nn.GELU(),
            nn.Linear(config.mlp_hidden, config.text_dim),
        )
        self.reader = TokenReader(sentence_model, config.tuned_reader_layers) if config.token_level else None
        self.attention = nn.Linear(config.text_dim, 1) if config.pooling == "attention" and not self.reader else None

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        return (lengths + self.stride - 1) // self.stride

    def positions(self, hidden: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The MLP's output at each adapter step, `(batch, steps, text_dim)`, and its `(batch, steps)` mask."""
        # Zero the padding and pad every sequence the same way on the right, so a clip's
        # output does not depend on what else is in its batch.
        x = hidden * lengths_to_mask(lengths, hidden.shape[1])[..., None]
        steps = math.ceil(hidden.shape[1] / self.stride)
        x = nn.functional.pad(x, (0, 0, 0, steps * self.stride + self.kernel - self.stride - hidden.shape[1]))
        x = nn.functional.gelu(self.adapter(x.transpose(1, 2))).transpose(1, 2)  # (batch, steps, adapter_dim)
        mask = lengths_to_mask(self.output_lengths(lengths), steps)
        if self.context is not None:
            x = self.context(x, mask)
        return self.mlp(x), mask

    def pool(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.reader is not None:
            return self.reader(x, mask)
        if self.attention is None:
            return mean_pool(x, mask)
        scores = self.attention(x).squeeze(-1).masked_fill(~mask, float("-inf"))
        return torch.einsum("bt,btd->bd", scores.softmax(dim=1), x)

    def forward(self, hidden: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.pool(*self.positions(hidden, lengths))


class SpeechTower(nn.Module):
    """Audio -> unit vectors in the shared space."""

    def __init__(self, config: SealConfig, encoder: RealLengthWhisperEncoder, scaling: nn.Linear, sentence_model=None):
        super().__init__()
        self.config = config
        self.encoder = encoder
        self.head = SpeechHead(config, encoder.d_model, sentence_model)
        self.scaling = scaling
        self.encoder.requires_grad_(False)
        top = config.trainable_encoder_layers
        if top:
            for layer in self.encoder.encoder.layers[-top:]:
                layer.requires_grad_(True)
            self.encoder.encoder.layer_norm.requires_grad_(True)

    def clip_features(self, clips: list[np.ndarray], pad_to_window: bool = False) -> tuple[list[torch.Tensor], list[int]]:
        """Log-mel features per window, `(frames, n_mels)` each, and the clip each window came from.

        Clips over 30 s are cut into windows whose encoder states are joined later, so the
        whole query is pooled rather than silently truncated.
        """
        windows, owners = [], []
        for index, clip in enumerate(clips):
            for window in split_windows(clip):
                windows.append(log_mel(window, self.encoder.n_mels, pad_to_window).T)
                owners.append(index)
        return windows, owners

    def encode_features(self, windows: list[torch.Tensor], owners: list[int], batch_size: int = 8) -> list[torch.Tensor]:
        """Run the Whisper encoder; returns one `(positions, d_model)` tensor per clip."""
        states: list[torch.Tensor] = [None] * len(windows)  # type: ignore[list-item]
        # Sort by length so each batch pads little; results go back to input order.
        order = sorted(range(len(windows)), key=lambda i: windows[i].shape[0])
        for start in range(0, len(order), batch_size):
            chosen = order[start : start + batch_size]
            mel, frame_lengths = pad_batch([windows[i] for i in chosen])
            hidden, lengths = self.encoder(mel.transpose(1, 2), frame_lengths)
            for row, i in enumerate(chosen):
                states[i] = hidden[row, : lengths[row]]
        clips = sorted(set(owners))
        return [torch.cat([s for s, o in zip(states, owners) if o == index]) for index in clips]

    def encode_clips(self, clips: list[np.ndarray], pad_to_window: bool = False, timings: dict[str, float] | None = None) -> list[torch.Tensor]:
        """Features then encoder: one `(positions, d_model)` tensor per clip; each stage's seconds into `timings`."""
        with timed(timings, "features"):
            windows, owners = self.clip_features(clips, pad_to_window)
        with timed(timings, "encode"):
            return self.encode_features(windows, owners)

    def embed_states(self, states: list[torch.Tensor]) -> torch.Tensor:
        """Encoder states per clip -> `(batch, dim)` unit vectors."""
        hidden, lengths = pad_batch(states)
        return nn.functional.normalize(self.scaling(self.head(hidden, lengths)), dim=-1)

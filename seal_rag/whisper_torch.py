"""Whisper's audio encoder as a torch module that runs on real-length, batched, masked input.

`transformers.WhisperEncoder` insists on 3,000 frames (30 s). Here its modules are reused
but the forward pass slices the positional embeddings to the frames actually present and
masks padding, so a batch of clips of different lengths encodes exactly as one-by-one.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from transformers import WhisperConfig
from transformers.models.whisper.modeling_whisper import WhisperEncoder

from .atomic_file import atomic_path
from .whisper_checkpoint import ct2_encoder_to_hf, read_ct2_model
from .errors import ModelLoadError
from .model_sources import cache_dir, is_packaged_whisper, packaged_whisper_ct2_dir
from .safe_text import for_terminal, one_line

# Toggling oneDNN warns about Intel-GPU TF32, which does not apply on a CPU.
warnings.filterwarnings("ignore", message="TF32 acceleration on top of oneDNN")

# Whisper-base's architecture, which the CTranslate2 file does not spell out.
WHISPER_BASE = dict(d_model=512, encoder_layers=6, encoder_attention_heads=8, encoder_ffn_dim=2048, num_mel_bins=80)


def lengths_to_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """`(batch,)` lengths -> `(batch, max_len)` bool, True on real positions."""
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


class RealLengthWhisperEncoder(torch.nn.Module):
    """Wraps a `WhisperEncoder` to accept `(batch, n_mels, frames)` with frames <= 3000."""

    def __init__(self, encoder: WhisperEncoder):
        super().__init__()
        self.encoder = encoder
        self.encoder.config._attn_implementation = "sdpa"

    @property
    def n_mels(self) -> int:
        return self.encoder.config.num_mel_bins

    @property
    def d_model(self) -> int:
        return self.encoder.config.d_model

    @staticmethod
    def output_lengths(frame_lengths: torch.Tensor) -> torch.Tensor:
        return (frame_lengths + 1) // 2  # conv2 has stride 2 and padding 1

    def forward(self, mel: torch.Tensor, frame_lengths: torch.Tensor, below_top: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode a padded batch.

        Args:
            mel: `(batch, n_mels, frames)`, zero beyond each clip's length.
            frame_lengths: `(batch,)` real frames per clip.
            below_top: stop this many layers short of the top, before the final layer norm:
                the input of the layers that training tunes (training/ caches it).

        Returns:
            hidden `(batch, positions, d_model)` and positions per clip `(batch,)`.
        """
        # oneDNN's fp32 kernels drift about 1e-3 from CTranslate2 over six layers; the
        # plain kernels stay within 1e-4 at the same speed.
        with torch.backends.mkldnn.flags(enabled=False):
            return self._forward(mel, frame_lengths, below_top)

    def _forward(self, mel: torch.Tensor, frame_lengths: torch.Tensor, below_top: int) -> tuple[torch.Tensor, torch.Tensor]:
        enc = self.encoder
        frame_mask = lengths_to_mask(frame_lengths, mel.shape[-1])[:, None, :]  # (batch, 1, frames)
        mel = mel * frame_mask
        # Zero conv1's output on padding so conv2 sees what its own zero padding would give
        # a lone clip: this is what makes batching exact.
        x = torch.nn.functional.gelu(enc.conv1(mel)) * frame_mask
        x = torch.nn.functional.gelu(enc.conv2(x)).permute(0, 2, 1)  # (batch, positions, d_model)
        out_lengths = self.output_lengths(frame_lengths)
        x = x + enc.embed_positions.weight[: x.shape[1]]
        key_mask = lengths_to_mask(out_lengths, x.shape[1])
        additive = torch.zeros(key_mask.shape, dtype=x.dtype, device=x.device)
        additive = additive.masked_fill(~key_mask, torch.finfo(x.dtype).min)[:, None, None, :]
        for layer in enc.layers[: len(enc.layers) - below_top]:
            x = layer(x, additive)
        return (x if below_top else enc.layer_norm(x)), out_lengths


def load_whisper_encoder(name: str) -> RealLengthWhisperEncoder:
    """Load a Whisper encoder by name: the packaged Whisper-base, a local dir, or a Hub id."""
    if is_packaged_whisper(name):
        encoder = WhisperEncoder(WhisperConfig(**WHISPER_BASE))
        encoder.load_state_dict(_packaged_base_state())
    else:
        encoder = _load_hf_encoder(name)
    encoder.eval()
    return RealLengthWhisperEncoder(encoder)


def _packaged_base_state() -> dict[str, torch.Tensor]:
    cached = cache_dir() / "whisper-base-encoder.safetensors"
    if cached.is_file():
        try:
            return load_file(cached)
        except Exception:  # noqa: BLE001 - a damaged cache file (a full disk, a stopped copy): made again below
            pass
    variables = read_ct2_model(packaged_whisper_ct2_dir() / "model.bin", prefix="encoder/")
    state = {k: torch.from_numpy(v.copy()) for k, v in ct2_encoder_to_hf(variables, WHISPER_BASE["encoder_layers"]).items()}
    try:
        with atomic_path(cached) as partial:
            save_file(state, partial)
    except OSError:  # a cache this process cannot write: converted again next time
        pass
    return state


def _load_hf_encoder(name: str) -> WhisperEncoder:
    from transformers import WhisperModel

    local = Path(name).expanduser().exists()
    try:
        model = WhisperModel.from_pretrained(str(Path(name).expanduser()) if local else name, local_files_only=local)
    except (OSError, ValueError) as error:
        raise ModelLoadError(
            f"cannot load Whisper model {for_terminal(repr(name))} ({one_line(error)}): use 'whisper-base' (shipped) or a local Whisper directory"
        ) from None
    return model.get_encoder()

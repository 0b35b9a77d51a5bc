"""The speech head on its own (no encoder): context layers and padding."""

from __future__ import annotations

import torch

from seal_rag import SealConfig
from seal_rag.speech_tower import SpeechHead

CONFIG = dict(adapter_dim=128, adapter_kernel=4, adapter_stride=4, mlp_hidden=256)


def _states(lengths: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    return torch.randn(len(lengths), max(lengths), 512), torch.tensor(lengths)


def test_new_context_layers_leave_the_head_unchanged():
    plain, with_context = SpeechHead(SealConfig(**CONFIG), 512), SpeechHead(SealConfig(**CONFIG, context_layers=2), 512)
    missing, unexpected = with_context.load_state_dict(plain.state_dict(), strict=False)
    assert missing and all(k.startswith("context.") for k in missing) and not unexpected
    states, lengths = _states([90, 40])
    plain.eval(), with_context.eval()
    assert torch.allclose(plain(states, lengths), with_context(states, lengths), atol=1e-6)


def test_context_layers_see_only_the_clip_not_its_batch():
    head = SpeechHead(SealConfig(**CONFIG, context_layers=2), 512)
    for parameter in head.context.parameters():  # away from the identity start, so attention matters
        torch.nn.init.normal_(parameter, std=0.05)
    head.eval()
    states, lengths = _states([90, 40, 7])
    batched = head(states, lengths)
    alone = torch.cat([head(states[i : i + 1, : lengths[i]], lengths[i : i + 1]) for i in range(3)])
    assert torch.allclose(batched, alone, atol=1e-5)

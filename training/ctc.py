"""An auxiliary CTC loss on the text model's word pieces: stage 1's `w_ctc` option.

The pooled MSE target says what a clip means but not which words were said, and the head
barely learns the words (the prototype's notes). CTC asks each output position to name the
word pieces it heard. A training-only linear layer splits each 160 ms position into two
slots, because speech runs at 3-5 word pieces a second and the head has 6.25 positions.
Slots are scored against the text model's own (frozen, unit-length) input embeddings of
the pieces, so the head learns them in the text model's terms, plus a learned blank. Only
the batch's own pieces are scored (a sampled softmax): a softmax over all 30,522 pieces
would cost several times the rest of a step.
"""

from __future__ import annotations

import torch
from torch import nn

SLOTS = 2  # CTC slots per head position


def word_pieces(text_model, texts: list[str]) -> list[list[int]]:
    """The text model's word-piece ids of each text, without [CLS]/[SEP]."""
    return text_model.tokenizer(texts, add_special_tokens=False)["input_ids"]


class CtcBranch(nn.Module):
    def __init__(self, text_model, text_dim: int):
        super().__init__()
        table = text_model[0].auto_model.embeddings.word_embeddings.weight.detach()
        # Not part of the checkpoint: the text model's weights, 47 MB, rebuilt at every start.
        self.register_buffer("pieces", nn.functional.normalize(table, dim=-1).clone(), persistent=False)
        self.split = nn.Linear(text_dim, SLOTS * text_dim)
        self.blank = nn.Parameter(torch.randn(text_dim) / text_dim**0.5)

    def loss(self, positions: torch.Tensor, position_lengths: torch.Tensor, targets: list[list[int]]) -> torch.Tensor:
        """Mean CTC loss per target piece. `positions`: the head's `(batch, steps, text_dim)` before pooling."""
        batch, steps, dim = positions.shape
        used = sorted({piece for target in targets for piece in target})
        local = {piece: k + 1 for k, piece in enumerate(used)}  # 0 is the blank
        table = torch.cat([nn.functional.normalize(self.blank, dim=0)[None], self.pieces[used]])  # (1 + pieces, dim)
        slots = self.split(positions).reshape(batch, steps * SLOTS, dim)
        log_probs = (slots @ table.T).log_softmax(dim=-1).transpose(0, 1)  # (time, batch, classes)
        flat = torch.tensor([local[p] for target in targets for p in target], dtype=torch.long)
        target_lengths = torch.tensor([len(t) for t in targets], dtype=torch.long)
        # zero_infinity: a clip spoken too fast for its slots adds no gradient instead of inf.
        return nn.functional.ctc_loss(log_probs, flat, position_lengths * SLOTS, target_lengths,
                                      blank=0, reduction="mean", zero_infinity=True)

"""Token-level alignment, an ablation: the frozen text model reads the head's positions.

The head's output at each 160 ms position goes into all-MiniLM-L6-v2 as `inputs_embeds`
(after a [CLS] embedding; MiniLM adds its own position embeddings), and MiniLM's mean pool
is the clip's vector. The text model then does the semantics and the head only has to map
sound to token-like vectors. Stage 1's option `token_level = true`.

Training-only for now: `seal_rag` cannot load such a head, so a run keeps `best_head.pt`
and exports no model directory, and `training.release` never picks it.
"""

from __future__ import annotations

import torch

from .model import HeadModel


class TokenLevelModel(HeadModel):
    def __init__(self, config, pool: int, text_model):
        super().__init__(config, pool)
        reader = text_model[0].auto_model.eval().requires_grad_(False)
        # Not a submodule: MiniLM's weights stay out of the checkpoint and the optimizer, and
        # it stays in eval mode (no dropout) while the head trains.
        self.__dict__["reader"] = reader
        cls = reader.embeddings.word_embeddings.weight[text_model.tokenizer.cls_token_id]
        self.register_buffer("cls", cls.detach().clone(), persistent=False)

    def forward(self, states: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        positions, mask = self.head.positions(states, lengths)  # (batch, steps, text_dim)
        batch = positions.shape[0]
        tokens = torch.cat([self.cls.expand(batch, 1, -1), positions], dim=1)
        mask = torch.cat([torch.ones(batch, 1, dtype=torch.bool), mask], dim=1)
        hidden = self.reader(inputs_embeds=tokens, attention_mask=mask.long()).last_hidden_state
        weights = mask.float() / mask.sum(dim=1, keepdim=True)  # MiniLM's own mean pooling
        return torch.einsum("bt,btd->bd", weights, hidden)


def keep_head_only(model, out_dir) -> None:
    """Stands in for `model.export`: there is no seal_rag model directory for this head yet."""
    print(f"token-level head: not exported to {out_dir}; best_head.pt holds it")

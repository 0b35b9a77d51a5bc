"""Stage 1's `w_layers` option for a token-level head: match every layer of the text model.

A token-level head's positions are read by the frozen text model, and stage 1's MSE compares
only what comes out of its last layer. That signal must pass back through all six layers
before it reaches the head, and it says what a clip means more than which words it holds.
The text model's lower layers, mean-pooled, are closer to the words themselves: the
embedding layer's mean is a bag of word pieces. So this loss mean-pools each hidden layer of
the text model twice, once reading the head's positions and once reading the transcript,
and asks the two to agree, layer by layer (the last layer is the MSE's, so it is left out).
"""

from __future__ import annotations

import torch
from torch import nn


def _layer_means(transformer, mask: torch.Tensor, **inputs) -> list[torch.Tensor]:
    """Mean pools of the embedding layer and of every layer, `(batch, dim)` each; the last is
    the sentence model's own pooled output."""
    hidden = transformer(attention_mask=mask.long(), output_hidden_states=True, **inputs).hidden_states
    weights = mask.float() / mask.sum(dim=1, keepdim=True)
    return [torch.einsum("bt,btd->bd", weights, h) for h in hidden]


class LayerTargets:
    """The text model's per-layer means of the transcripts, and the loss against a head's."""

    def __init__(self, reader, tokenizer, max_tokens: int = 128):
        self.reader, self.tokenizer, self.max_tokens = reader, tokenizer, max_tokens

    @torch.no_grad()
    def of_texts(self, texts: list[str]) -> list[torch.Tensor]:
        tokens = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_tokens, return_tensors="pt")
        return _layer_means(self.reader.transformer, tokens["attention_mask"].bool(), input_ids=tokens["input_ids"])

    def of_positions(self, positions: torch.Tensor, mask: torch.Tensor) -> list[torch.Tensor]:
        """The same means with the head's positions as the tokens, read as `TokenReader` reads
        them, so the last equals `TokenReader`'s output and one pass serves both losses."""
        batch = positions.shape[0]
        tokens = torch.cat([self.reader.cls.expand(batch, 1, -1), positions], dim=1)
        mask = torch.cat([torch.ones(batch, 1, dtype=torch.bool), mask], dim=1)
        return _layer_means(self.reader.transformer, mask, inputs_embeds=tokens)

    def loss(self, spoken: list[torch.Tensor], texts: list[str]) -> torch.Tensor:
        """Mean over the layers below the last of the squared distance between unit means
        (2 - 2 cos, as stage 1's MSE). `spoken`: `of_positions`' output."""
        written = self.of_texts(texts)
        pairs = zip(spoken[:-1], written[:-1])
        unit = nn.functional.normalize
        return torch.stack([((unit(s, dim=-1) - unit(w, dim=-1)) ** 2).sum(dim=-1).mean() for s, w in pairs]).mean()

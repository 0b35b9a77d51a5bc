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

from seal_rag.speech_tower import mean_pool


class LayerTargets:
    """The text model's per-layer means of the transcripts, and the loss against a head's."""

    def __init__(self, reader, tokenizer, max_tokens: int = 128):
        self.reader, self.tokenizer, self.max_tokens = reader, tokenizer, max_tokens

    @torch.no_grad()
    def of_texts(self, texts: list[str]) -> list[torch.Tensor]:
        tokens = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_tokens, return_tensors="pt")
        out = self.reader.transformer(**tokens, output_hidden_states=True)
        return [mean_pool(h, tokens["attention_mask"].bool()) for h in out.hidden_states]

    def of_positions(self, positions: torch.Tensor, mask: torch.Tensor) -> list[torch.Tensor]:
        """The same means with the head's positions as the tokens, as `TokenReader` reads them:
        the last is the head's pooled output, so one pass serves both losses."""
        return self.reader.layer_means(positions, mask, every_layer=True)

    def loss(self, spoken: list[torch.Tensor], texts: list[str]) -> torch.Tensor:
        """Mean over the layers below the last of the squared distance between unit means
        (2 - 2 cos, as stage 1's MSE). `spoken`: `of_positions`' output."""
        written = self.of_texts(texts)
        pairs = zip(spoken[:-1], written[:-1])
        unit = nn.functional.normalize
        return torch.stack([((unit(s, dim=-1) - unit(w, dim=-1)) ** 2).sum(dim=-1).mean() for s, w in pairs]).mean()

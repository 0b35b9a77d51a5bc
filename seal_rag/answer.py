"""hits -> answer: the extractive answer used when no chat model is configured, and the prompt.

The extractive answer is the sentence of the top passage closest to the query vector in
the shared space, so it needs no transcript and no language model.
"""

from __future__ import annotations

import numpy as np

from .sentences import split_sentences
from .store import Hit

MIN_ANSWER_WORDS = 4
SYSTEM_PROMPT = (
    "You answer questions using only the numbered context passages. "
    "Cite passages like [1]. If the context does not hold the answer, say so."
)


def extractive_answer(model, query_vector: np.ndarray, hits: list[Hit]) -> str:
    """The sentence of the top hit whose text-tower vector is nearest the query vector."""
    if not hits:
        return ""
    # A title line or a fragment is rarely the answer; prefer real sentences when there are any.
    sentences = split_sentences(hits[0].text)  # paragraph breaks split too: a title line stands alone
    candidates = [s for s in sentences if len(s.split()) >= MIN_ANSWER_WORDS] or sentences or [hits[0].text]
    scores = model.embed_texts(candidates) @ np.asarray(query_vector, dtype=np.float32)
    return candidates[int(np.argmax(scores))]


def context_block(hits: list[Hit]) -> str:
    """Numbered passages with their sources, as the chat model reads them."""
    return "\n\n".join(f"[{h.rank}] ({h.metadata.get('title', '')}) {h.text}" for h in hits)

"""Adapt a speech tower to one knowledge base, without labels.

    >>> from seal_rag import SpeechEmbedding
    >>> from training.adapt import adapt
    >>> model = SpeechEmbedding.from_pretrained()
    >>> adapted = adapt(model, ["Paragraph one. More of it.", "Paragraph two. And so on."], "kb-adapter")

The prototypes found that hearing a knowledge base's own words, even as unlabelled sentences,
multiplied Top-10 about 5x. So: speak the knowledge base's sentences with the training TTS
voices, and tune the speech head on them with
- stage 1's MSE (the head's output should equal the text model's embedding of the sentence), and
- the inverse cloze task (a spoken sentence should retrieve the rest of its passage, against
  the other passages of the batch).

Only the speech head changes. The shared scaling layer stays fixed, so the adapted model keeps
the index's `space_fingerprint` and queries the same index without re-embedding it.

Dependencies: `seal_rag` plus the TTS and augmentation modules (`seal_rag.tts`,
`seal_rag.augment`, `seal_rag.voices`). For a `seal-rag adapt` CLI these three small modules
(and this one) would move into `seal_rag`, since `seal_rag` must not import `training`.
"""

from __future__ import annotations

import copy
import random
import time
from pathlib import Path

import torch
from torch import nn

from seal_rag.augment import augment
from seal_rag.speech_tower import pad_batch
from seal_rag.tts import SynthesisError, synthesize
from seal_rag.voices import pick_voice

from .text_sources import context_without, speakable, split_sentences


def adapt(
    model,
    texts: list[str],
    out_dir: str | Path,
    steps: int = 300,
    batch_size: int = 32,
    lr: float = 3e-4,
    max_sentences: int = 2000,
    temperature: float = 0.05,
    w_ict: float = 1.0,
    seed: int = 0,
    progress: bool = True,
):
    """Tune `model`'s speech head on spoken sentences of `texts`; save and return the result.

    Args:
        model: A `SpeechEmbedding` (normally the shipped one). It is not modified.
        texts: The knowledge base's passages (chunks, as indexed).
        out_dir: Where to write the adapted model directory.
        steps, batch_size, lr: The optimisation; a few hundred steps are enough.
        max_sentences: Cap on spoken sentences (synthesis and encoding cost ~0.2 s each).
        temperature, w_ict: InfoNCE temperature and the ICT loss weight (MSE has weight 1).
        seed: Fixes voices, augmentation and batches.

    Returns:
        The adapted `SpeechEmbedding`, also saved to `out_dir`.
    """
    from tqdm import tqdm

    rng = random.Random(seed)
    torch.manual_seed(seed)
    start = time.time()
    # Sentences with the passage they came from: the ICT positive is the rest of that passage.
    pairs = [(s, i, j) for i, text in enumerate(texts) for j, s in enumerate(split_sentences(text)) if speakable(s)]
    pairs = rng.sample(pairs, min(max_sentences, len(pairs)))
    if len(pairs) < 2:
        raise ValueError("adapt needs at least two speakable sentences in the knowledge base")

    clips, kept = [], []
    for sentence, i, j in tqdm(pairs, desc="speaking the knowledge base", unit="clip", disable=not progress):
        try:
            clip = synthesize(sentence, pick_voice("train", rng), rng)
        except SynthesisError:
            continue
        clips.append(augment(clip, rng))
        kept.append((sentence, i, j))
    with torch.no_grad():
        states = []
        for k in tqdm(range(0, len(clips), 8), desc="encoding", unit="batch", disable=not progress):
            states += [s.half() for s in model.speech.encode_clips(clips[k : k + 8])]  # (positions, d_model) each
        targets = model.text.encode_base([s for s, _, _ in kept])  # (n, text_dim)
        contexts = model.text.encode_base([context_without(texts[i], j) or texts[i] for _, i, j in kept])
    passage_of = torch.tensor([i for _, i, _ in kept])

    adapted = copy.deepcopy(model)
    adapted.scaling.requires_grad_(False)  # keep the index's space
    head = adapted.speech.head
    optimizer = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=0.05)
    head.train()
    for step in tqdm(range(steps), desc="adapting", unit="step", disable=not progress):
        batch = rng.sample(range(len(kept)), min(batch_size, len(kept)))
        hidden, lengths = pad_batch([states[b].float() for b in batch])
        out = head(hidden, lengths)  # (batch, text_dim)
        mse = ((nn.functional.normalize(out, dim=-1) - targets[batch]) ** 2).sum(-1).mean()
        queries = nn.functional.normalize(adapted.scaling(out), dim=-1)
        positives = adapted.text.project(contexts[batch])
        logits = queries @ positives.T / temperature
        same = passage_of[batch][None, :] == passage_of[batch][:, None]  # two sentences of one passage
        logits = logits.masked_fill(same & ~torch.eye(len(batch), dtype=torch.bool), float("-inf"))
        ict = nn.functional.cross_entropy(logits, torch.arange(len(batch)))
        loss = mse + w_ict * ict
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(head.parameters(), 1.0)
        optimizer.step()
    head.eval()
    adapted.eval()
    adapted.scaling.requires_grad_(True)  # trainable again, so the saved file holds it like any model
    adapted.save_pretrained(out_dir)
    if progress:
        print(f"adapted on {len(kept)} spoken sentences in {time.time() - start:.0f} s -> {out_dir}")
    return adapted

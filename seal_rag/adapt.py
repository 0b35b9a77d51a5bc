"""Adapt a speech tower to one knowledge base, without labels: what `seal-rag adapt` runs.

    >>> from seal_rag import SpeechEmbedding
    >>> from seal_rag.adapt import adapt
    >>> model = SpeechEmbedding.from_pretrained()
    >>> result = adapt(model, ["Paragraph one. More of it here.", "Paragraph two. And so on, at length."], steps=50)
    >>> result.model.save_pretrained("kb-tuned")

The prototypes found that hearing a knowledge base's own words, even as unlabelled sentences,
multiplied Top-10 about 5x. So: speak the knowledge base's sentences with the training TTS
voices, and tune the speech head on them with
- stage 1's MSE (the head's output should equal the text model's embedding of the sentence), and
- the inverse cloze task (a spoken sentence should retrieve the rest of its passage, against
  the other passages of the batch).

With `recognizer_lr`, the phonetic half's phoneme recognizer is tuned on the same clips too, by
CTC against espeak-ng's phonemes of each sentence (as it was trained), so it hears the
knowledge base's own words; the phonetic IDF stays fixed. That is an experiment, not what
`seal-rag adapt` does: on a voice family nothing here speaks with it gained nothing
(training/experiments/README.md, "recognizer in adapt").

Only the speech head (and, with `recognizer_lr`, the recognizer) change. The shared scaling
layer stays fixed, so the adapted model keeps the index's `space_fingerprint` and queries the
same index without re-embedding it.
Voices come from the "train" split of `seal_rag.voices` only: the validation and benchmark
voices stay unheard, so figures measured on them still mean something after adapting.
"""

from __future__ import annotations

import copy
import math
import random
import time
from dataclasses import dataclass

import torch
from torch import nn

from .augment import augment
from .config import ADAPT_MAX_SENTENCES, ADAPT_TAKES
from .whisper_int8 import Ct2WhisperEncoder, can_encode_with_ct2
from .errors import DocumentError
from .phonetic import PHONEMES, phonemize
from .progress import progress_bar
from .sentences import MAX_WORDS, MIN_WORDS, context_without, speakable, split_sentences
from .speech_tower import pad_batch
from .tts import SynthesisError, synthesize
from .voices import TRAINING_FAMILIES, pick_voice

VOICE_SPLIT = "train"  # never "val" or "bench": see the module docstring
SPEAK_BLOCK = 64  # clips synthesised, then encoded together: the encoder batches them by length
ENCODE_BLOCK = 256  # texts per call of the text model: about 10 s between progress updates
# Passes over the spoken sentences when no step count is given: the 300 steps of 32 over
# 2,000 sentences that `adapt` was first measured with, kept as it hears more.
EPOCHS = 5
SPAN_WORDS = (MIN_WORDS, 10)  # a spoken question is about 10 words; a knowledge-base sentence twice that


def default_steps(sentences: int, batch_size: int = 32) -> int:
    """Training steps for `EPOCHS` passes over `sentences` spoken sentences."""
    return max(1, math.ceil(EPOCHS * sentences / batch_size))


@dataclass
class Adaptation:
    """The adapted model and what it cost."""

    model: nn.Module  # a new `SpeechEmbedding`; the base model is left as it was
    passages: int
    sentences: int  # spoken clips it was tuned on (sentences times `takes`)
    steps: int
    speak_seconds: float  # synthesis and encoding
    train_seconds: float

    @property
    def seconds(self) -> float:
        return self.speak_seconds + self.train_seconds


def adapt(
    model,
    texts: list[str],
    steps: int | None = None,
    batch_size: int = 32,
    lr: float = 3e-4,
    max_sentences: int = ADAPT_MAX_SENTENCES,
    temperature: float = 0.05,
    w_ict: float = 1.0,
    reader_lr_scale: float = 1.0,
    takes: int = ADAPT_TAKES,
    spans: int = 0,
    bf16: bool | None = None,
    seed: int = 0,
    progress: bool = True,
    recognizer_lr: float = 0.0,
    families: tuple[str, ...] = TRAINING_FAMILIES,
) -> Adaptation:
    """Tune a copy of `model`'s speech head on spoken sentences of `texts`.

    Args:
        model: A `SpeechEmbedding` (normally the shipped one). It is not modified.
        texts: The knowledge base's passages (chunks, as indexed).
        steps, batch_size, lr: The optimisation; `steps` defaults to `EPOCHS` passes over the sentences.
        max_sentences: Cap on spoken sentences (synthesis and encoding cost ~0.2 s each).
        temperature, w_ict: InfoNCE temperature and the ICT loss weight (MSE has weight 1).
        reader_lr_scale: The learning rate of the head's tuned MiniLM layers, if it has any
            (`SealConfig.tuned_reader_layers`), as a share of `lr`; 0 keeps them as shipped.
        takes: Times each sentence is spoken, each time by another voice and augmentation.
            Passes count clips, so the default steps grow with it.
        spans: Further clips per sentence that speak only a random run of its words
            (`SPAN_WORDS`), as short as a spoken question; their MSE target is that run's embedding.
        bf16: Train the head under bfloat16 autocast; by default where the CPU computes bf16
            natively (`bf16_is_native`), since elsewhere it is emulated and slower than fp32.
        seed: Fixes sentences, voices, augmentation and batches.
        progress: Draw progress bars on stderr.
        recognizer_lr: Also tune the phonetic half's recognizer at this learning rate, one pass
            over the clips by CTC; 0 leaves it as shipped. Ignored for a model without a phonetic half.
        families: The synthesizer families to speak with (their training voices): a model
            trained with a family held out is adapted without it, so that family stays unheard.

    Raises:
        DocumentError: fewer than two sentences of `texts` could be spoken.
        ValueError: `takes` is below 1 (nothing would be spoken, and the error would blame the text).
    """
    if takes < 1:
        raise ValueError(f"takes must be at least 1, got {takes}")
    rng = random.Random(seed)
    torch.manual_seed(seed)
    start = time.perf_counter()
    # Sentences with the passage they came from: the ICT positive is the rest of that passage.
    pairs = [(s, i, j) for i, text in enumerate(texts) for j, s in enumerate(split_sentences(text)) if speakable(s)]
    pairs = rng.sample(pairs, min(max_sentences, len(pairs)))
    # The cap counts sentences, not takes or spans.
    pairs = [pair for pair in pairs for _ in range(takes)] + [(_span(s, rng), i, j) for s, i, j in pairs for _ in range(spans)]
    states, kept = _speak_and_encode(model, pairs, rng, progress, families)
    if len(kept) < 2:
        raise DocumentError(
            f"the knowledge base has {len(kept)} sentence(s) that could be spoken ({MIN_WORDS}-{MAX_WORDS} words of prose); "
            "adapt needs at least 2: ingest more text first"
        )
    # MSE targets (the sentences) and ICT positives (the rest of their passages): (n, text_dim) each.
    encoded = _encode_once(model, [s for s, _, _ in kept] + [context_without(texts[i], j) or texts[i] for _, i, j in kept], progress)
    targets, contexts = encoded[: len(kept)], encoded[len(kept) :]
    passage_of = torch.tensor([i for _, i, _ in kept])
    steps = steps or default_steps(len(kept), batch_size)
    speak_seconds = time.perf_counter() - start

    start = time.perf_counter()
    adapted = copy.deepcopy(model)
    adapted.scaling.requires_grad_(False)  # keep the index's space
    head = adapted.speech.head
    bf16 = bf16_is_native() if bf16 is None else bf16
    optimizer = torch.optim.AdamW(_param_groups(head, lr, reader_lr_scale), lr=lr, weight_decay=0.05)
    head.train()
    with progress_bar("adapting the speech head", steps, progress) as advance:
        for _ in range(steps):
            batch = rng.sample(range(len(kept)), min(batch_size, len(kept)))
            loss = _loss(adapted, [states[b] for b in batch], targets[batch], contexts[batch], passage_of[batch], temperature, w_ict, bf16)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(head.parameters(), 1.0)
            optimizer.step()
            advance(1)
    if recognizer_lr and adapted.phonetic is not None:
        _tune_recognizer(adapted.phonetic.recognizer, states, [s for s, _, _ in kept], batch_size, recognizer_lr, rng, bf16, progress)
    adapted.eval()
    adapted.scaling.requires_grad_(True)  # trainable again, so the saved file holds it like any model
    head.requires_grad_(True)  # and so are tuned layers that `reader_lr_scale=0` froze
    if adapted.phonetic is not None:
        adapted.phonetic.recognizer.requires_grad_(False)  # frozen, as in every loaded model
    return Adaptation(adapted, len(texts), len(kept), steps, speak_seconds, time.perf_counter() - start)


def bf16_is_native() -> bool:
    """Whether this CPU computes bfloat16 matrix products in hardware (AVX512-BF16 or AMX)."""
    return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()


def _span(sentence: str, rng: random.Random) -> str:
    """A random run of `SPAN_WORDS` words of `sentence` (all of it if it is that short)."""
    words = sentence.split()
    length = min(len(words), rng.randint(*SPAN_WORDS))
    start = rng.randint(0, len(words) - length)
    return " ".join(words[start : start + length]).strip(",;:")


def _param_groups(head: nn.Module, lr: float, reader_lr_scale: float) -> list[dict]:
    # The tuned MiniLM layers are pretrained, like training's `reader_lr_scale`: they move slower.
    own, reader = [], []
    for name, param in head.named_parameters():
        (reader if name.startswith("reader.tuned.") else own).append(param)
    if not reader_lr_scale:
        for param in reader:
            param.requires_grad_(False)
    return [{"params": own, "lr": lr}] + ([{"params": reader, "lr": lr * reader_lr_scale}] if reader and reader_lr_scale else [])


def _speak_and_encode(model, pairs: list[tuple[str, int, int]], rng: random.Random, progress: bool,
                      families: tuple[str, ...] = TRAINING_FAMILIES):
    """Synthesise and augment each sentence, then run the frozen encoder once per clip.

    The encoder is CTranslate2's int8 one when it gives this model's states (about 3x faster
    than fp32 torch; training used it too), else the model's own. Returns the fp16 encoder
    states `(positions, d_model)` of each clip (fp16 halves the memory; the head trains on
    them in fp32) and the sentences that were spoken.
    """
    if can_encode_with_ct2(model.config):
        ct2 = Ct2WhisperEncoder(torch.get_num_threads())
        encode = lambda clips: [torch.from_numpy(ct2(clip)) for clip in clips]  # noqa: E731
    else:
        encode = model.speech.encode_clips
    states, kept = [], []
    with progress_bar("speaking and encoding sentences", len(pairs), progress) as advance:
        for block_start in range(0, len(pairs), SPEAK_BLOCK):
            clips = []
            for sentence, i, j in pairs[block_start : block_start + SPEAK_BLOCK]:
                try:
                    clips.append(augment(synthesize(sentence, pick_voice(VOICE_SPLIT, rng, families), rng), rng))
                    kept.append((sentence, i, j))
                except SynthesisError:
                    continue  # one unspeakable sentence should not stop the run
            if clips:
                with torch.no_grad():
                    states += [s.half() for s in encode(clips)]
            advance(min(SPEAK_BLOCK, len(pairs) - block_start))
    return states, kept


def _encode_once(model, texts: list[str], progress: bool) -> torch.Tensor:
    """`model.text.encode_base(texts)`, each distinct text encoded once: every take and span of a
    sentence repeats its context, and every take its text (at ~24 texts/s, minutes of the default run).
    A repeated text gets the very same row, where encoding it per clip varied it by batch padding."""
    unique = list(dict.fromkeys(texts))
    rows = []
    with progress_bar("encoding the sentences and their passages", len(unique), progress) as advance, torch.no_grad():
        for start in range(0, len(unique), ENCODE_BLOCK):
            rows.append(model.text.encode_base(unique[start : start + ENCODE_BLOCK]))
            advance(len(rows[-1]))
    row_of = {text: row for row, text in enumerate(unique)}
    return torch.cat(rows)[[row_of[text] for text in texts]]


def _tune_recognizer(recognizer: nn.Module, states, sentences: list[str], batch_size: int, lr: float,
                     rng: random.Random, bf16: bool, progress: bool) -> None:
    """One pass of CTC over the spoken sentences' espeak-ng phonemes, as `training.phonetic` trains
    the recognizer (an ensemble's members are tuned together, through their averaged output).
    Batches hold clips of similar length: the recognizer reads every state, so padding costs as
    much as speech (a step is seconds on 2 cores)."""
    labels = [torch.tensor([PHONEMES.index(c) for c in phonemize(s)]) for s in sentences]
    order = sorted((i for i, label in enumerate(labels) if len(label)), key=lambda i: len(states[i]))
    batches = [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
    rng.shuffle(batches)
    recognizer.requires_grad_(True).train()
    optimizer = torch.optim.AdamW(recognizer.parameters(), lr=lr, weight_decay=0.05)
    with progress_bar("adapting the phoneme recognizer", len(batches), progress) as advance:
        for batch in batches:
            hidden, lengths = pad_batch([states[b].float() for b in batch])
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                logits, frames = recognizer(hidden, lengths)
            targets = [labels[b] for b in batch]
            loss = nn.functional.ctc_loss(
                logits.float().log_softmax(-1).transpose(0, 1), torch.cat(targets), frames,
                torch.tensor([len(t) for t in targets]), blank=recognizer.blank, zero_infinity=True)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(recognizer.parameters(), 1.0)
            optimizer.step()
            advance(1)
    recognizer.eval()


def _loss(adapted, states, targets, contexts, passage_of, temperature: float, w_ict: float, bf16: bool) -> torch.Tensor:
    """Stage 1's MSE plus the inverse cloze task's InfoNCE, for one batch of clips."""
    hidden, lengths = pad_batch([s.float() for s in states])
    # Only the head's forward runs in bf16 (its matrix products are the step's cost); the losses stay fp32.
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        out = adapted.speech.head(hidden, lengths)
    out = out.float()  # (batch, text_dim)
    mse = ((nn.functional.normalize(out, dim=-1) - targets) ** 2).sum(-1).mean()
    queries = nn.functional.normalize(adapted.scaling(out), dim=-1)
    positives = adapted.text.project(contexts)  # (batch, dim)
    logits = queries @ positives.T / temperature
    # Another sentence of the same passage has the same context: it is no negative.
    same = passage_of[None, :] == passage_of[:, None]
    logits = logits.masked_fill(same & ~torch.eye(len(states), dtype=torch.bool), float("-inf"))
    ict = nn.functional.cross_entropy(logits, torch.arange(len(states)))
    return mse + w_ict * ict

"""The phonetic half of the shared space: what a query sounds like, matched against how passages are spelled out.

A text passage is turned into phonemes by espeak-ng's own rules (the same engine that speaks
the training audio). A spoken query is turned into phonemes by a small CTC head on Whisper's
encoder states (`PhonemeRecognizer`): no words, no spelling and no language model, so a name
the tower never heard (Khwarezmia, Priestley) still lands near the passage that spells it.
Both sides then become the same hashed, IDF-weighted bag of phoneme n-grams
(`PhoneticVectorizer`): a fixed linear map shared by both towers, like the scaling layer.
"""

from __future__ import annotations

import copy
import ctypes
import ctypes.util
import math
import threading
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .errors import ModelLoadError
from .text_tower import hardware_bf16

# espeak-ng's en-us IPA symbols that the training text uses at least 50 times, word gap first.
# Stress marks are dropped: they are barely audible in fast speech and double the classes' confusions.
PHONEMES = " abdefhijklmnoprstuvwxzæðŋɐɑɔəɚɛɜɡɪɹɾʃʊʌʒʔː̩θᵻ"
STRESS = "ˈˌ"
ESPEAK_IPA = 0x02  # espeak_TextToPhonemes: phonemes as IPA (UTF-8)
ESPEAK_UTF8 = 1
WINDOW_STATES = 1500  # Whisper encoder states in 30 s, its window: the longest clip the recognizer heard in training


class _Espeak:
    """libespeak-ng through ctypes: text -> IPA, about 7,500 sentences a second.

    One process-wide engine behind a lock: the library keeps global state and is not thread-safe.
    """

    def __init__(self, voice: str = "en-us"):
        name = ctypes.util.find_library("espeak-ng") or "libespeak-ng.so.1"
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            raise ModelLoadError("libespeak-ng is missing, and the phonetic tower needs it: apt-get install espeak-ng") from None
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
        lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_int, ctypes.c_int]
        if lib.espeak_Initialize(0x02, 0, None, 0) <= 0 or lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise ModelLoadError(f"espeak-ng cannot load its {voice} voice: apt-get install --reinstall espeak-ng-data")
        self.lib, self.lock = lib, threading.Lock()

    def ipa(self, text: str) -> str:
        buffer = ctypes.create_string_buffer(text.encode("utf-8", "replace"))
        pointer = ctypes.c_void_p(ctypes.addressof(buffer))
        clauses = []
        with self.lock:
            while pointer.value:  # one clause per call; the call moves the pointer on
                out = self.lib.espeak_TextToPhonemes(ctypes.byref(pointer), ESPEAK_UTF8, ESPEAK_IPA)
                if out:
                    clauses.append(out.decode("utf-8", "replace"))
        return " ".join(clauses)


_engine: _Espeak | None = None
_engine_lock = threading.Lock()


def phonemize(text: str, symbols: str = PHONEMES) -> str:
    """Text -> its phonemes as one string of `symbols`, words separated by single spaces."""
    global _engine
    with _engine_lock:  # two threads' first calls must not both initialise the library
        if _engine is None:
            _engine = _Espeak()
    kept = set(symbols)
    return " ".join("".join(c for c in word if c in kept) for word in _engine.ipa(text).split()).strip()


def phonemize_words(words: Sequence[str], symbols: str = PHONEMES) -> list[str]:
    """Each word's phonemes alone, as one run of `symbols` (a word espeak-ng reads as several, 1990 say, is joined)."""
    phonemize("")  # starts the engine
    kept = set(symbols) - {" "}
    return ["".join(c for c in _engine.ipa(word) if c in kept) for word in words]


class PhonemeRecognizer(nn.Module):
    """Whisper encoder states (50 a second) -> phoneme logits (25 a second) for CTC.

    The Conv1D adapter halves the rate (speech runs at 12-20 phonemes a second, so 25 leaves
    CTC room), an MLP maps into the head's width, and two transformer layers give each step
    the whole utterance. The last class is CTC's blank.
    """

    def __init__(self, d_model: int = 512, dim: int = 384, layers: int = 2, symbols: str = PHONEMES):
        super().__init__()
        self.symbols = symbols
        self.adapter = nn.Conv1d(d_model, dim, 4, stride=2, padding=1)
        self.mlp = nn.Sequential(nn.GELU(), nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, dim))
        layer = nn.TransformerEncoderLayer(dim, 6, 4 * dim, 0.1, batch_first=True, norm_first=True)
        self.context = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.classes = nn.Linear(dim, len(symbols) + 1)

    @property
    def blank(self) -> int:
        return len(self.symbols)

    def forward(self, states: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`(batch, positions, d_model)` zero-padded states -> `(batch, steps, classes)` logits and step counts."""
        if states.shape[1] > WINDOW_STATES:
            return self._windowed(states, lengths)
        return self._forward(states, lengths)

    def _windowed(self, states: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """States past 30 s, heard in equal windows of at most 30 s (what the recognizer was trained
        on; attention over a 10-minute clip would also take gigabytes), the logits joined end to end."""
        pieces, owners = [], []
        for row, length in enumerate(lengths.tolist()):
            for piece in torch.tensor_split(states[row, :length], max(1, math.ceil(length / WINDOW_STATES))):
                pieces.append(piece)
                owners.append(row)
        logits, steps = self._forward(nn.utils.rnn.pad_sequence(pieces, batch_first=True), torch.tensor([len(p) for p in pieces]))
        joined = [torch.cat([logits[i, : steps[i]] for i in range(len(pieces)) if owners[i] == row]) for row in range(len(lengths))]
        return nn.utils.rnn.pad_sequence(joined, batch_first=True), torch.tensor([len(j) for j in joined])

    def _forward(self, states: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.adapter(states.transpose(1, 2)).transpose(1, 2)
        # The adapter gives L // 2 steps for L positions; a longer clip's padding must not add one
        # to an odd-length clip in the same batch (a batch then equals one clip at a time).
        steps = torch.clamp(lengths // 2, min=1, max=x.shape[1])
        padding = torch.arange(x.shape[1], device=x.device)[None] >= steps[:, None]
        return self.classes(self.context(self.mlp(x), src_key_padding_mask=padding)), steps

    def decode(self, logits: torch.Tensor, steps: torch.Tensor) -> list[str]:
        """Greedy CTC: the best class per step, repeats merged, blanks dropped."""
        best = logits.argmax(-1)
        out = []
        for row, count in zip(best.tolist(), steps.tolist()):
            kept, previous = [], -1
            for k in row[:count]:
                if k != previous and k != self.blank:
                    kept.append(self.symbols[k])
                previous = k
            out.append(" ".join("".join(kept).split()))
        return out


class RecognizerEnsemble(nn.Module):
    """Several recognizers heard as one: their log-probabilities averaged step by step.

    Each member reads the same Whisper states at the same rate over the same symbols, so the mean
    is one recognizer's output and everything that reads a recognizer (greedy decoding, soft
    counts, knowledge-base decoding, `seal-rag adapt`) reads it unchanged. Members trained apart
    make different errors; where one is unsure another may not be (issue 32: two no-flite
    recognizers together scored espeak validation MRR 0.545 against 0.529 and 0.512 apart).
    """

    def __init__(self, members: Sequence[PhonemeRecognizer]):
        super().__init__()
        self.members = nn.ModuleList(members)
        self.symbols = members[0].symbols

    @property
    def blank(self) -> int:
        return len(self.symbols)

    def forward(self, states: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        outputs = [member(states, lengths) for member in self.members]
        return torch.stack([logits.float().log_softmax(-1) for logits, _ in outputs]).mean(0), outputs[0][1]

    def decode(self, logits: torch.Tensor, steps: torch.Tensor) -> list[str]:
        return self.members[0].decode(logits, steps)


def phoneme_ngrams(phonemes: str, low: int = 2, high: int = 4) -> list[str]:
    """Within-word n-grams, each word padded with a space on both sides (scikit-learn's `char_wb`)."""
    grams = []
    for word in phonemes.split():
        padded = f" {word} "
        for n in range(low, high + 1):
            grams += [padded[i : i + n] for i in range(len(padded) - n + 1)]
    return grams


@dataclass(frozen=True)
class SoftDecoding:
    """How `soft_ngram_counts` reads the recognizer's posteriors (`SealConfig.phonetic_decoding = "soft"`).

    temperature: divides the logits before the softmax; towards 0 it is the greedy 1-best.
    top_k: alternatives kept per slot. min_prob: alternatives below this are dropped.
    min_insert: a blank stretch of the 1-best becomes an optional slot for each symbol whose
        posterior peaks at this or more there (a phoneme or word gap the 1-best dropped); 1 = never.
    """

    temperature: float = 1.0
    top_k: int = 3
    min_prob: float = 0.02
    min_insert: float = 1.0


PRUNE = 1e-3  # n-gram paths less likely than this are not followed


def soft_ngram_counts(logits: np.ndarray, blank: int, symbols: str, soft: SoftDecoding, bucket,
                      low: int = 2, high: int = 4) -> dict[int, float]:
    """Expected counts of each n-gram bucket under the recognizer's posteriors, not its 1-best.

    The greedy path cuts the steps into slots: each run of one non-blank class (as CTC collapses
    it) is a slot that surely holds a symbol, distributed over its `top_k` likeliest ones (mean
    posterior of its steps, renormalised over those kept; a word gap is one of the symbols). With
    `min_insert` < 1, a blank run between two slots also becomes an optional slot: each symbol
    whose posterior peaks at `min_insert` or more there (other than its neighbours') may be
    present with that probability, else the slot is empty. The utterance is then a confusion
    network between two word gaps, and an n-gram's expected count is the sum, over every start
    and every choice of the slots it covers, of their probabilities' product, counting only
    n-grams with no word gap inside (`phoneme_ngrams`' within-word n-grams). With one-hot
    posteriors (or a temperature towards 0) it gives exactly the greedy string's counts.

    Args:
        logits: `(steps, classes)` of one clip, `blank` CTC's blank class.
        bucket: n-gram -> bucket (`PhoneticVectorizer.bucket`).
    """
    x = logits.astype(np.float64) / max(soft.temperature, 1e-6)
    p = np.exp(x - x.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    best = logits.argmax(axis=1)
    runs, start = [], 0  # (class, first step, end step) of each run of one best class
    for t in range(1, len(best) + 1):
        if t == len(best) or best[t] != best[start]:
            runs.append((int(best[start]), start, t))
            start = t
    slots: list[tuple[list[tuple[str, float]], float]] = [([(" ", 1.0)], 1.0)]  # (alternatives, presence)
    for r, (k, a, b) in enumerate(runs):
        if k != blank:
            mean = np.delete(p[a:b].mean(axis=0), blank)  # classes before the blank keep their index
            order = np.argsort(-mean)[: soft.top_k]
            kept = [(j, mean[j]) for j in order if mean[j] >= soft.min_prob or j == k]
            total = sum(q for _, q in kept)
            slots.append(([(symbols[j], float(q / total)) for j, q in kept], 1.0))
        elif soft.min_insert < 1:
            peak = np.delete(p[a:b].max(axis=0), blank)
            neighbours = {runs[i][0] for i in (r - 1, r + 1) if 0 <= i < len(runs)}
            order = np.argsort(-peak)[: soft.top_k]
            kept = [(symbols[j], float(peak[j])) for j in order if peak[j] >= soft.min_insert and j not in neighbours]
            total = sum(q for _, q in kept)
            if kept:
                slots.append(([(c, q / total) for c, q in kept], min(total, 1.0)))  # which symbol, if any is there
    slots.append(([(" ", 1.0)], 1.0))

    counts: dict[int, float] = {}

    def extend(j: int, gram: str, q: float) -> None:
        # `gram` ends in a symbol; a word gap can only end it. Slot j is the next to read.
        if len(gram) >= low and gram.strip():
            key = bucket(gram)
            counts[key] = counts.get(key, 0.0) + q
        if len(gram) == high or (len(gram) > 1 and gram[-1] == " ") or j == len(slots):
            return
        alternatives, presence = slots[j]
        for c, r in alternatives:
            if q * r * presence >= PRUNE:
                extend(j + 1, gram + c, q * r * presence)
        if presence < 1 and q * (1 - presence) >= PRUNE:
            extend(j + 1, gram, q * (1 - presence))

    for i, (alternatives, presence) in enumerate(slots):
        for c, r in alternatives:
            if r * presence >= PRUNE:
                extend(i + 1, c, r * presence)
    return counts


class PhoneticVectorizer:
    """Phoneme strings -> unit vectors: hashed n-gram counts, log-scaled, times a fixed IDF.

    The IDF comes from the training text and ships with the model, so a passage's vector does
    not depend on what else is indexed (adding documents never moves old ones).
    """

    def __init__(self, idf: np.ndarray, low: int = 2, high: int = 4):
        self.idf, self.low, self.high = np.asarray(idf, np.float32), low, high
        self._buckets: dict[str, int] = {}  # n-gram -> bucket: a few thousand distinct grams recur in every text

    @property
    def dim(self) -> int:
        return len(self.idf)

    def bucket(self, gram: str) -> int:
        found = self._buckets.get(gram)
        if found is None:
            found = self._buckets[gram] = zlib.crc32(gram.encode()) % self.dim  # crc32: the same on every machine and run
        return found

    def counts(self, phonemes: str) -> Counter:
        return Counter(map(self.bucket, phoneme_ngrams(phonemes, self.low, self.high)))

    def vectors(self, phonemes: list[str]) -> np.ndarray:
        return self.count_vectors([self.counts(text) for text in phonemes])

    def count_vectors(self, counts: list[dict[int, float]]) -> np.ndarray:
        """Bucket counts per document -> unit vectors. Counts may be expected (fractional) counts:
        a count n >= 1 weighs 1 + log n, as for whole counts; below 1 it weighs n (continuous at 1)."""
        out = np.zeros((len(counts), self.dim), np.float32)
        for row, bucket_counts in enumerate(counts):
            buckets = np.fromiter(bucket_counts.keys(), np.int64, len(bucket_counts))
            n = np.fromiter(bucket_counts.values(), np.float64, len(bucket_counts))
            # float32 weight times float32 IDF, as the scalar code did (vectors match it bit for bit)
            out[row, buckets] = np.where(n >= 1, 1 + np.log(np.maximum(n, 1.0)), n).astype(np.float32) * self.idf[buckets]
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)

    @classmethod
    def fit(cls, phonemes: list[str], dim: int, low: int = 2, high: int = 4) -> "PhoneticVectorizer":
        """The smoothed IDF of each bucket over `phonemes` (one string per document)."""
        vectorizer = cls(np.ones(dim, np.float32), low, high)
        df = np.zeros(dim)
        for text in phonemes:
            for k in vectorizer.counts(text):
                df[k] += 1
        vectorizer.idf = (np.log((1 + len(phonemes)) / (1 + df)) + 1).astype(np.float32)
        return vectorizer


def _inputs_to_fp32(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    return tuple(x.float() for x in inputs)


_COPY_LOCK = threading.Lock()  # module-wide: a lock held by the half would stop it being copied or pickled


def bf16_recognizer(recognizer: nn.Module) -> nn.Module:
    """A bf16 copy of `recognizer` for queries, its logits layers in fp32 (bf16's 8 bits would tie close classes)."""
    copied = copy.deepcopy(recognizer).to(torch.bfloat16).eval()
    for module in copied.modules():
        if isinstance(module, PhonemeRecognizer):
            module.classes.float().register_forward_pre_hook(_inputs_to_fp32)
    return copied


class PhoneticHalf(nn.Module):
    """Both towers' phonetic half: speech states -> recognized phonemes -> vector; text -> espeak phonemes -> vector.

    Trained by `training/phonetic.py`, not by stage 1, stage 2 or `seal-rag adapt`, so its
    weights are frozen here and the IDF is a buffer: both still ship in the model's weights.
    """

    def __init__(self, dim: int, d_model: int = 512, soft: SoftDecoding | None = None, recognizers: int = 1):
        super().__init__()
        # One recognizer keeps its weights' names (`phonetic.recognizer.*`), so older model files load.
        recognizer = (PhonemeRecognizer(d_model) if recognizers == 1
                      else RecognizerEnsemble([PhonemeRecognizer(d_model) for _ in range(recognizers)]))
        self.recognizer = recognizer.requires_grad_(False)
        self.register_buffer("idf", torch.ones(dim))
        self.soft = soft  # None: the recognizer's greedy 1-best; else expected n-gram counts (`soft_ngram_counts`)
        self.bf16 = hardware_bf16()  # queries read a bf16 copy of the recognizer (`query_recognizer`); False: fp32

    def query_recognizer(self) -> nn.Module:
        """The recognizer queries run: where the CPU computes bf16 in hardware, a bf16 copy of it
        (about 1.4 times faster on 2 cores; its log-probabilities within a mean KL of 1e-4 of fp32's,
        `test_phonetic`), made again whenever the recognizer's weights change (`seal-rag adapt` can
        tune them). Kept outside the module tree: it is no part of the model's weights."""
        if not self.bf16:
            return self.recognizer
        version = [p._version for p in self.recognizer.parameters()]  # grows with every in-place change
        twin = self.__dict__.get("_bf16")
        if twin is None or twin[0] != version:
            with _COPY_LOCK:  # the service's first questions arrive together: one copy, not one each
                twin = self.__dict__.get("_bf16")
                if twin is None or twin[0] != version:
                    self.__dict__["_bf16"] = twin = (version, bf16_recognizer(self.recognizer))
        return twin[1]

    def _run(self, states: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Full-rate encoder states per clip -> `(clips, steps, classes)` fp32 logits and step counts."""
        lengths = torch.tensor([s.shape[0] for s in states])
        recognizer = self.query_recognizer()
        dtype = next(recognizer.parameters()).dtype
        logits, steps = recognizer(nn.utils.rnn.pad_sequence(states, batch_first=True).to(dtype), lengths)
        return logits.float(), steps

    @property
    def vectorizer(self) -> PhoneticVectorizer:
        return PhoneticVectorizer(self.idf.numpy())

    @torch.no_grad()
    def heard(self, states: list[torch.Tensor]) -> list[str]:
        """Full-rate encoder states per clip -> the phonemes the recognizer hears in each."""
        return self.recognizer.decode(*self._run(states))

    @torch.no_grad()
    def logits(self, states: list[torch.Tensor]) -> list[np.ndarray]:
        """Full-rate encoder states per clip -> the recognizer's `(steps, classes)` logits for each
        (an ensemble's averaged log-probabilities: read the same way, by softmax or argmax)."""
        logits, steps = self._run(states)
        return [row[:count].numpy() for row, count in zip(logits, steps.tolist())]

    def counts_from_logits(self, logits: list[np.ndarray], soft: SoftDecoding | None = None) -> list[dict[int, float]]:
        """Each clip's n-gram bucket counts from its recognizer logits: expected counts with `soft`, else the greedy string's."""
        vectorizer = self.vectorizer
        if soft is None:
            return [vectorizer.counts(self.recognizer.decode(torch.from_numpy(x)[None], torch.tensor([len(x)]))[0])
                    for x in logits]
        return [soft_ngram_counts(x, self.recognizer.blank, self.recognizer.symbols, soft, vectorizer.bucket,
                                  vectorizer.low, vectorizer.high) for x in logits]

    def vectors_from_logits(self, logits: list[np.ndarray], soft: SoftDecoding | None = None) -> np.ndarray:
        """Each clip's phonetic vector from its recognizer logits: soft counts with `soft`, else greedy."""
        return self.vectorizer.count_vectors(self.counts_from_logits(logits, soft))

    def embed_texts(self, texts: list[str], phonemes: list[str] | None = None) -> np.ndarray:
        """Passages' phonetic vectors; `phonemes`: their `phonemize`d texts, if made already."""
        return self.vectorizer.vectors(phonemes if phonemes is not None else [phonemize(t) for t in texts])

"""Real-length vs 30 s-padded encoding, and the cascade, on 20 real clips of 2-8 s.

    python -m seal_rag.bench.encode [--clips 20] [--repeats 3]

Prints median encode times, their ratio, the cosine between the two vectors, and the
cascade's median `embed_audio` time on the same clips.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import torch

from ..cascade import CascadeEmbedding, Transcriber
from ..embedding import SpeechEmbedding
from .clips import fixture_clips


def median_seconds(fn, clips: list[np.ndarray], repeats: int) -> tuple[float, list]:
    fn(clips[0])  # warm-up
    times, outputs = [], []
    for clip in clips:
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            out = fn(clip)
            best = min(best, time.perf_counter() - start)
        times.append(best)
        outputs.append(out)
    return float(np.median(times)), outputs


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog=f"seal-rag bench {__name__.rsplit('.', 1)[-1]}", description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3, help="best of N per clip")
    args = parser.parse_args(argv)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = SpeechEmbedding.from_pretrained()
    clips = fixture_clips(args.clips, 2.0, 8.0)

    real, real_vecs = median_seconds(lambda c: model.embed_clips([c])[0], clips, args.repeats)
    padded, padded_vecs = median_seconds(lambda c: model.embed_clips([c], pad_to_window=True)[0], clips, args.repeats)
    # The head may be untrained, so also compare what it reads: the mean encoder state.
    with torch.no_grad():
        states = [(model.speech.encode_clips([c])[0].mean(0), model.speech.encode_clips([c], True)[0][: c.size // 320].mean(0)) for c in clips]
    state_cos = [torch.nn.functional.cosine_similarity(a, b, dim=0).item() for a, b in states]
    vec_cos = [float(a @ b) for a, b in zip(real_vecs, padded_vecs)]

    print(f"clips: {len(clips)} real-speech clips of 2-8 s; torch threads: {torch.get_num_threads()}; model trained: {model.trained}")
    print(f"speech tower, real-length features: median {real * 1000:7.1f} ms")
    print(f"speech tower, 30 s padding:         median {padded * 1000:7.1f} ms")
    print(f"speedup (padded / real):            {padded / real:7.2f}x")
    print(f"cosine real vs padded, final vector: median {np.median(vec_cos):.4f} (min {min(vec_cos):.4f})")
    print(f"cosine real vs padded, mean encoder state over the speech frames: median {np.median(state_cos):.4f}")
    for beam, fit in ((5, False), (1, False), (1, True)):
        cascade = CascadeEmbedding(model, Transcriber(beam_size=beam, fit_window=fit))
        took, _ = median_seconds(lambda c: cascade.embed_audio(c), clips, 1)
        label = f"cascade (faster-whisper base int8, beam {beam}, {'fitted window' if fit else '30 s window'})"
        print(f"{label}: median {took * 1000:7.1f} ms  ({took / real:.1f}x the speech tower)")


if __name__ == "__main__":
    main()

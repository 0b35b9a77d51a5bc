"""Real-length vs 30 s-padded encoding, and the cascade, on 20 real clips of 2-8 s.

    seal-rag bench encode [--clips 20] [--repeats 3] [--out benchmarks]

Prints median encode times, their ratio, the cosine between the two vectors, and the
cascade's median `embed_audio` time on the same clips, and writes them to `encode.json` and
`encode.md`. Timings are only meaningful on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from ..cascade import CascadeEmbedding, Transcriber
from ..embedding import SpeechEmbedding
from .clips import fixture_clips
from .data import add_data_argument, data_root
from .report import model_fields, write_report


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
    parser.add_argument("--out", type=Path, default=Path("benchmarks"))
    add_data_argument(parser)
    args = parser.parse_args(argv)
    root = data_root(args.data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = SpeechEmbedding.from_pretrained()
    clips = fixture_clips(root, args.clips, 2.0, 8.0)

    real, real_vecs = median_seconds(lambda c: model.embed_clips([c])[0], clips, args.repeats)
    padded, padded_vecs = median_seconds(lambda c: model.embed_clips([c], pad_to_window=True)[0], clips, args.repeats)
    # The head may be untrained, so also compare what it reads: the mean encoder state.
    with torch.no_grad():
        states = [(model.speech.encode_clips([c])[0].mean(0), model.speech.encode_clips([c], True)[0][: c.size // 320].mean(0)) for c in clips]
    state_cos = [torch.nn.functional.cosine_similarity(a, b, dim=0).item() for a, b in states]
    vec_cos = [float(a @ b) for a, b in zip(real_vecs, padded_vecs)]

    rows = [["clips", f"{len(clips)} real-speech clips of 2-8 s, best of {args.repeats} per clip"],
            ["speech tower, real-length features", f"{real * 1000:.1f} ms"],
            ["speech tower, 30 s padding", f"{padded * 1000:.1f} ms"],
            ["speedup (padded / real)", f"{padded / real:.2f}x"],
            ["cosine real vs padded, final vector", f"median {np.median(vec_cos):.3f}, min {min(vec_cos):.3f}"],
            ["cosine real vs padded, mean encoder state over the speech frames", f"median {np.median(state_cos):.3f}"]]
    cascades = {}
    for beam, fit in ((5, False), (1, False), (1, True)):
        cascade = CascadeEmbedding(model, Transcriber(beam_size=beam, fit_window=fit))
        took, _ = median_seconds(lambda c: cascade.embed_audio(c), clips, 1)
        label = f"cascade embed_audio (faster-whisper base int8, beam {beam}, {'fitted window' if fit else '30 s window'})"
        cascades[label] = took
        rows.append([label, f"{took * 1000:.1f} ms ({took / real:.1f}x the speech tower)"])
    payload = {"benchmark": "encode", "clips": len(clips), "repeats": args.repeats, **model_fields(model),
               "median_seconds": {"real_length": real, "padded_30s": padded, **cascades},
               "cosine_real_vs_padded": {"vector_median": float(np.median(vec_cos)), "vector_min": min(vec_cos),
                                         "encoder_state_median": float(np.median(state_cos))}}
    write_report(args.out, "encode", payload, ["figure (median over clips)", "value"], rows)


if __name__ == "__main__":
    main()

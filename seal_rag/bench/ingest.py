"""Ingest throughput: seal-rag's embed-and-store against plain sentence-transformers MiniLM (fp32) on the same chunks.

    seal-rag bench ingest [--chunks 4000] [--block 500] [--docs FOLDER | --data DIR] [--quick]

Real chunks (the held-out text sets, then MedQuAD, cut as `seal-rag ingest` cuts them; or
the documents under `--docs`, read and cut as `seal-rag ingest FOLDER` reads them) go
through `ingest.store_chunks` into a fresh index, exactly as `seal-rag ingest` stores them
(text tower, phonetic half, Chroma and the phonetic index; one batch written while the next
is embedded), and through plain `SentenceTransformer.encode` of the same MiniLM in fp32
(batch 64; vectors only, nothing stored): the baseline the scale issue names. The two take
turns block by block, so both see the same load on the machine; the figures are each side's
chunks over its own seconds.

It also prints how far the text tower's semantic vectors are from fp32 ones (a bf16 copy
runs the sentence model where the CPU multiplies bf16 in hardware, `text_tower.hardware_bf16`):
the least cosine over the chunks, the tolerance behind keeping the space's fingerprint.
`--quick` (400 chunks, blocks of 200) is the smoke run.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from itertools import islice
from pathlib import Path

import numpy as np
import torch

from ..embedding import SpeechEmbedding
from ..ingest import store_chunks
from ..progress import progress_bar
from ..store import SealIndex
from .data import add_data_argument, data_root
from .report import model_fields, write_report
from .scale import document_chunks, real_chunks


@torch.no_grad()
def least_cosine(model, texts: list[str]) -> float:
    """The least cosine between the text tower's semantic vectors as it makes them and in plain fp32."""
    tower = model.text
    made = tower.project(tower.encode_base(texts)).numpy()
    bf16, tower.bf16 = tower.bf16, False
    try:
        plain = tower.project(tower.encode_base(texts)).numpy()
    finally:
        tower.bf16 = bf16
    return float(np.min(np.sum(made * plain, axis=1)))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="seal-rag bench ingest", description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=4000, help="real chunks to ingest")
    parser.add_argument("--block", type=int, default=500, help="chunks per turn of each side")
    parser.add_argument("--docs", type=Path, default=None, help="time these documents instead of the benchmark data's passages")
    parser.add_argument("--out", type=Path, default=Path("benchmarks"))
    parser.add_argument("--quick", action="store_true", help="400 chunks in blocks of 200: a smoke run")
    add_data_argument(parser)
    args = parser.parse_args(argv)
    if args.quick:
        args.chunks, args.block = 400, 200
    if args.chunks <= 0 or args.block <= 0:
        raise SystemExit("--chunks and --block must be positive")
    chunks = list(islice(document_chunks(args.docs) if args.docs else real_chunks(data_root(args.data)), args.chunks))
    if not chunks:
        raise SystemExit(f"{args.docs} gives no text to ingest: point --docs at documents seal-rag ingest reads")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = SpeechEmbedding.from_pretrained()
    plain = model.text.sentence_model  # the same MiniLM, called as sentence-transformers' users call it
    model.embed_texts([c.text for c in chunks[:64]])  # warm both up at chunk length
    plain.encode([c.text for c in chunks[:64]], batch_size=64)

    seconds = {"seal-rag ingest": 0.0, "sentence-transformers fp32": 0.0}
    with tempfile.TemporaryDirectory(prefix="seal-ingest-") as scratch, \
            progress_bar("Ingesting, then encoding with plain MiniLM, block by block", 2 * len(chunks)) as advance:
        index = SealIndex.open(model, scratch, create=True)
        for start in range(0, len(chunks), args.block):
            block = chunks[start : start + args.block]
            began = time.perf_counter()
            store_chunks(model, index, block)
            seconds["seal-rag ingest"] += time.perf_counter() - began
            advance(len(block))
            began = time.perf_counter()
            plain.encode([c.text for c in block], batch_size=64)
            seconds["sentence-transformers fp32"] += time.perf_counter() - began
            advance(len(block))
        if index.count() != len(chunks):
            raise SystemExit(f"the index holds {index.count()} chunks after ingesting {len(chunks)}: a bug, please report it")

    rates = {name: len(chunks) / s for name, s in seconds.items()}
    ratio = rates["seal-rag ingest"] / rates["sentence-transformers fp32"]
    cosine = least_cosine(model, [c.text for c in chunks[: min(len(chunks), 1000)]])
    payload = {"benchmark": "ingest", "chunks": len(chunks), "documents": "--docs" if args.docs else "benchmark data", "block": args.block, "quick": args.quick,
               "mean_chunk_chars": float(np.mean([len(c.text) for c in chunks])), "bf16": model.text.bf16,
               "torch_threads": torch.get_num_threads(), **model_fields(model), "chunks_per_second": rates,
               "speedup_over_plain": ratio, "least_cosine_to_fp32": cosine}
    rows = [[name, f"{len(chunks):,}", f"{seconds[name]:.1f}", f"{rate:.1f}"] for name, rate in rates.items()]
    rows.append(["seal-rag ingest / plain MiniLM", "", "", f"{ratio:.2f}x"])
    rows.append([f"least cosine, text tower's semantic vectors ({'bf16' if model.text.bf16 else 'fp32'}) against fp32",
                 f"{min(len(chunks), 1000):,}", "", f"{cosine:.6f}"])
    write_report(args.out, "ingest" + ("-quick" if args.quick else ""), payload, ["", "chunks", "seconds", "chunks/s"], rows)


if __name__ == "__main__":
    main()

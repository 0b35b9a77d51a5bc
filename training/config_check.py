"""Every setting a training config may hold, and the check that a merged config holds only those.

A misspelt key would otherwise be ignored and the run would train on an inherited value, and a
wrong type or an impossible size would fail deep in torch, minutes or hours in. So `load_config`
checks every table and key here first and stops with one line naming the setting and the fix.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import reprlib
from typing import Callable, NamedTuple, NoReturn

from seal_rag.augment import AugmentConfig
from seal_rag.config import MAX_WHOLE_SETTING, SealConfig
from seal_rag.errors import ModelLoadError
from seal_rag.safe_text import for_terminal


class Kind(NamedTuple):
    wanted: str  # how the error message asks for it
    fits: Callable[[object], bool]


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)  # TOML's true is not a count


def _number(value: object) -> bool:
    # 1 is as good as 1.0; TOML's inf and nan are no setting (a model config holding one does not load)
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


COUNT = Kind("a whole number above 0", lambda v: _whole(v) and v > 0)  # sizes, counts, steps, intervals
WHOLE = Kind("a whole number, 0 or more", lambda v: _whole(v) and v >= 0)
NUMBER = Kind("a number, 0 or more", lambda v: _number(v) and v >= 0)
POSITIVE = Kind("a number above 0", lambda v: _number(v) and v > 0)  # a rate or a divisor
FRACTION = Kind("a number from 0 to 1", lambda v: _number(v) and 0 <= v <= 1)  # probabilities, shares
TEXT = Kind("a string", lambda v: isinstance(v, str))
FLAG = Kind("true or false", lambda v: isinstance(v, bool))
TEXTS = Kind("a list of strings", lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v))
RANGE = Kind("a list of two numbers, low then high", lambda v: isinstance(v, list) and len(v) == 2
             and all(_number(x) for x in v) and v[0] <= v[1])
BF16 = Kind('true, false or "auto"', lambda v: isinstance(v, bool) or v == "auto")

# Clips of each text kind (training.cache's pools); 0 leaves a kind out.
MIX = dict.fromkeys(("squad_question", "squad_sentence", "medquad_question", "medquad_sentence", "prose", "wordnet"), WHOLE)

# What both stages and the recognizer's training read (train_common: schedule, optimizer, Logger, Run).
_RUN = {"out_dir": TEXT, "seed": WHOLE, "steps": COUNT, "batch_size": COUNT, "lr": POSITIVE, "warmup": WHOLE,
        "weight_decay": NUMBER, "time_mask": FRACTION, "log_interval": COUNT, "eval_interval": COUNT, "bf16": BF16}
_STAGE = _RUN | {"init": TEXT, "max_clips": COUNT, "feature_dropout": FRACTION, "reader_lr_scale": NUMBER,
                 "encoder_lr_scale": NUMBER}

# SealConfig's own fields by their defaults' types; its sizes must be above 0 (0 channels is no model).
# Bounded as seal_rag.config bounds a model's config.json: a size past it is a typo, not a model.
_MODEL_WHOLE = Kind(f"a whole number from 0 to {MAX_WHOLE_SETTING:,}", lambda v: _whole(v) and 0 <= v <= MAX_WHOLE_SETTING)
_MODEL_SIZE = Kind(f"a whole number from 1 to {MAX_WHOLE_SETTING:,}", lambda v: _whole(v) and 0 < v <= MAX_WHOLE_SETTING)
_BY_TYPE = {int: _MODEL_WHOLE, float: NUMBER, str: TEXT, bool: FLAG}
_SIZES = ("text_dim", "dim", "adapter_dim", "adapter_kernel", "adapter_stride", "mlp_hidden")
MODEL = {f.name: _MODEL_SIZE if f.name in _SIZES else _BY_TYPE[type(f.default)] for f in dataclasses.fields(SealConfig)}

# seal_rag.augment.AugmentConfig's fields: probabilities, ranges (low, high) and seconds.
AUGMENT = {f.name: FRACTION if f.name.startswith("p_") else RANGE if f.type.startswith("tuple") else NUMBER
           for f in dataclasses.fields(AugmentConfig)}

SCHEMA = {
    "data": {"cache_dir": TEXT, "seed": WHOLE, "shard_size": COUNT, "pool": COUNT, "below_top": WHOLE, "threads": COUNT,
             "val_questions": COUNT, "val_corpus": TEXT, "shards": TEXT, "families": TEXTS, "mix": MIX, "extend": [MIX]},
    "augment": AUGMENT,
    "model": MODEL,
    "stage1": _STAGE | {"w_ctc": NUMBER, "w_layers": NUMBER},
    "stage2": _STAGE | {"temperature": POSITIVE, "hard_negatives": FLAG, "cosent_scale": NUMBER, "w_nce": NUMBER,
                        "w_cosent": NUMBER, "w_mse": NUMBER, "train_scaling": FLAG, "pair_kinds": TEXTS},
    "phonetic": _RUN | {"hash_dim": COUNT, "weight": FRACTION, "decoding": TEXT, "temperature": POSITIVE, "top_k": COUNT,
                        "min_prob": FRACTION, "min_insert": FRACTION, "spelled_weight": FRACTION, "threads": COUNT,
                        "ensemble": TEXTS, "idf_texts": COUNT},
}


def check_config(config: dict, shown: str) -> None:
    """Stop with one line at the first table or key `SCHEMA` does not know, or value not of its kind.
    `shown` is the config's file name, already safe for a terminal."""
    _check_table(config, SCHEMA, "", shown)
    if isinstance(config.get("model"), dict):
        _check_model(config["model"], shown)


def _check_table(table: dict, schema: dict, where: str, shown: str) -> None:
    """`where` is the table's dotted name ("" for the file's top level)."""
    for key, value in table.items():
        name = f"{where}.{key}" if where else key
        if key not in schema:
            known = difflib.get_close_matches(key, schema, n=1)
            hint = f"did you mean {known[0]}?" if known else f"the settings there are {', '.join(schema)}"
            raise SystemExit(f"error: config {shown} sets {for_terminal(name)}, which no training command reads: {hint}")
        kind = schema[key]
        if isinstance(kind, (dict, list)):
            _check_tables(value, kind, name, shown)
        elif not kind.fits(value):
            _wrong(name, value, kind.wanted, shown)


def _check_tables(value: object, kind: dict | list, name: str, shown: str) -> None:
    """`value` is a table if `kind` is a dict, an array of tables if it is a one-dict list."""
    many = isinstance(kind, list)
    wanted = f"a list of [[{name}]] tables" if many else f"a [{name}] table"
    if many and not isinstance(value, list):
        _wrong(name, value, wanted, shown)
    for table in value if many else [value]:
        if not isinstance(table, dict):
            _wrong(name, table, wanted, shown)
        _check_table(table, kind[0] if many else kind, name, shown)


def _wrong(name: str, value: object, wanted: str, shown: str) -> NoReturn:
    raise SystemExit(f"error: config {shown} sets {for_terminal(name)} = {for_terminal(reprlib.repr(value))}: make it {wanted}")


def _check_model(model: dict, shown: str) -> None:
    """The checks across settings SealConfig makes (pooling's names, stride against kernel...)."""
    try:
        SealConfig(**model)
    except ModelLoadError as error:
        raise SystemExit(f"error: config {shown} has a [model] seal-rag cannot build: {for_terminal(error)}") from None

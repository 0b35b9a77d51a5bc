"""Mistakes a user running the training commands can make end in one line naming the fix."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pytest

from seal_rag.errors import DataNotFoundError
from training.cache import _pick
from training.config import run_command
from training.data import load_clips, shard_numbers
from training.text_sources import Utterance

REPO = Path(__file__).resolve().parents[2]


def test_seal_rag_errors_are_one_line(capsys):
    def main():
        raise DataNotFoundError("no data folder: pass --data DIR or set SEAL_RAG_DATA")

    with pytest.raises(SystemExit) as stop:
        run_command(main)
    assert stop.value.code == "error: no data folder: pass --data DIR or set SEAL_RAG_DATA"


def test_a_misspelt_text_kind_is_named():
    pools = {"squad_question": lambda: [Utterance("what is it", "squad_question")]}
    with pytest.raises(SystemExit) as stop:
        _pick({"squad_questoin": 3}, pools, random.Random(0), set())
    assert str(stop.value.code) == "error: the config's text mix ([data.mix] or [[data.extend]]) names squad_questoin: the text kinds are squad_question"


def test_an_empty_text_pool_stops_instead_of_looping_forever():
    pools = {"prose": lambda: []}
    with pytest.raises(SystemExit) as stop:
        _pick({"prose": 5}, pools, random.Random(0), set())
    assert "no prose texts" in str(stop.value.code) and "set prose = 0" in str(stop.value.code)


def test_a_full_pool_is_drawn_with_repeats():
    pools = {"prose": lambda: [Utterance("one", "prose"), Utterance("two", "prose")]}
    picked = _pick({"prose": 5}, pools, random.Random(0), set())
    assert len(picked) == 5 and {u.text for u, _ in picked} == {"one", "two"}


@pytest.mark.parametrize("ranges", ["0-80", "1:2:3", "", "a:b"])
def test_malformed_shard_ranges_are_named(ranges):
    with pytest.raises(SystemExit) as stop:
        shard_numbers(ranges)
    assert str(stop.value.code).startswith(f"error: shards {ranges!r} is not a list of ranges")


def test_training_before_caching_says_to_cache(tmp_path):
    with pytest.raises(SystemExit) as stop:
        load_clips(tmp_path, "train")
    assert str(stop.value.code) == f"error: no cached train clips in {tmp_path}: run `sh training/run_cache.sh CONFIG` with this config first"


def test_run_cache_fails_when_a_worker_fails(tmp_path):
    # A stand-in interpreter: every step succeeds but the second training worker.
    python = tmp_path / "python"
    python.write_text('#!/bin/sh\ncase "$*" in *"--worker 1/2"*) exit 3;; esac\nexit 0\n')
    python.chmod(0o755)
    done = subprocess.run(["sh", "training/run_cache.sh", "cfg.toml"], cwd=REPO, env={"PYTHON": str(python), "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 3
    python.write_text("#!/bin/sh\nexit 0\n")
    assert subprocess.run(["sh", "training/run_cache.sh", "cfg.toml"], cwd=REPO, env={"PYTHON": str(python), "PATH": "/usr/bin:/bin"},
                          timeout=60).returncode == 0


def test_a_misspelt_model_setting_is_named():
    from training.model import seal_config

    with pytest.raises(SystemExit) as stop:
        seal_config({"adapter_dim": 384, "adaptr_kernel": 8})
    assert str(stop.value.code).startswith("error: [model] has no setting adaptr_kernel")


def test_an_adapter_that_does_not_fit_the_pooling_is_named():
    from seal_rag import SealConfig
    from training.model import pooled_config

    with pytest.raises(SystemExit) as stop:
        pooled_config(SealConfig(adapter_kernel=6, adapter_stride=6), 4)
    assert str(stop.value.code) == "error: [model] adapter_kernel 6 and adapter_stride 6 must be multiples of [data] pool = 4"


def test_an_init_of_another_architecture_is_named(tmp_path):
    import torch

    from seal_rag import SealConfig
    from training.model import HeadModel
    from training.train_common import warm_start

    small = HeadModel(SealConfig(mlp_hidden=64, token_level=False), 2)
    path = tmp_path / "head.pt"
    torch.save({"head.unrelated.weight": torch.zeros(1)}, path)
    with pytest.raises(SystemExit) as stop:
        warm_start(small, path)
    message = str(stop.value.code)
    assert message.startswith(f"error: init {path} does not fit this config's [model] (") and "weights missing, 1 unexpected" in message


@pytest.mark.parametrize("worker", ["0", "2/2", "a/b", "0/0"])
def test_a_bad_worker_split_is_named(worker):
    done = subprocess.run([sys.executable, "-m", "training.cache", "--config", "training/configs/base.toml", "--worker", worker],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and f"--worker {worker}: give i/n with 0 <= i < n" in done.stderr and "Traceback" not in done.stderr


def test_a_setting_read_late_is_checked_at_the_start(tmp_path):
    from training import stage2
    from training.config import load_config

    config = load_config(REPO / "training" / "configs" / "seal-base-minilm-1-pooled.toml")
    del config["stage2"]["cosent_scale"]  # read only at stage 2's first batch, after mining
    with pytest.raises(SystemExit) as stop:
        stage2.train(config)
    assert str(stop.value.code).startswith("error: [stage2] in ") and "lacks cosent_scale" in str(stop.value.code)
    del config["stage2"]
    with pytest.raises(SystemExit, match=r"has no \[stage2\] table: is it the config for this command"):
        stage2.train(config)


def test_every_committed_config_sets_what_its_commands_require():
    # The checks above must not refuse a config the recipe or an experiment runs.
    from training import phonetic, stage1, stage2
    from training.config import load_config, require

    checked = 0
    for path in sorted((REPO / "training").rglob("*.toml")):
        config = load_config(path)
        for module in (stage1, stage2, phonetic):
            section = next(iter(module.REQUIRED))
            if section in config:
                for table, keys in module.REQUIRED.items():
                    require(config, table, keys)
                checked += 1
    assert checked > 50


def test_a_cache_dir_that_is_a_file_is_named(tmp_path):
    from training.cache import run
    from training.config import load_config

    config = load_config(REPO / "training" / "configs" / "smoke.toml")
    config["data"]["cache_dir"] = str(tmp_path / "a_file")
    (tmp_path / "a_file").write_text("")
    with pytest.raises(SystemExit) as stop:
        run(config, "train")
    assert str(stop.value.code) == f"error: [data] cache_dir {tmp_path / 'a_file'} cannot be made a folder (File exists): set another path in the config"


@pytest.mark.parametrize("module", ["cache", "evaluate", "release"])
def test_a_config_without_data_is_named(tmp_path, monkeypatch, module):
    import importlib

    (tmp_path / "run.toml").write_text("[stage1]\nsteps = 3\n")
    monkeypatch.setattr(sys, "argv", [module, "--config", str(tmp_path / "run.toml")])
    with pytest.raises(SystemExit, match=r"has no \[data\] table: is it the config for this command"):
        importlib.import_module(f"training.{module}").main()


@pytest.mark.parametrize("text", ["-1", "0", "two"])
def test_a_count_option_below_one_is_a_usage_error(text):
    import argparse

    from training.config import positive_int

    with pytest.raises(argparse.ArgumentTypeError, match="is not a whole number above 0"):
        positive_int(text)
    assert positive_int("2") == 2

#!/bin/sh
# Stage 1, then stage 2, then release, for one config. Each step resumes if rerun.
# Experiments are configs under training/experiments/configs/ (see README.md there).
set -e
CONFIG=${1:-training/configs/base.toml}
python -m training.stage1 --config "$CONFIG"
python -m training.stage2 --config "$CONFIG"
python -m training.release --config "$CONFIG"

#!/bin/sh
# Cache validation clips, then training clips, with two single-threaded workers (together
# they use the 2 cores better than one 2-thread process: TTS subprocesses fill the gaps).
# Resumable: rerun the same command after an interruption.
set -e
CONFIG=${1:-training/configs/base.toml}
python -m training.cache --config "$CONFIG" --split val
python -m training.cache --config "$CONFIG" --split train --plan-only
python -m training.cache --config "$CONFIG" --split train --worker 0/2 --threads 1 &
python -m training.cache --config "$CONFIG" --split train --worker 1/2 --threads 1 &
wait

#!/bin/sh
# Cache validation clips, then training clips, with two single-threaded workers (together
# they use the 2 cores better than one 2-thread process: TTS subprocesses fill the gaps).
# Resumable: rerun the same command after an interruption.
set -e
CONFIG=${1:-training/configs/base.toml}
PYTHON=${PYTHON:-python3}
"$PYTHON" -m training.cache --config "$CONFIG" --split val
"$PYTHON" -m training.cache --config "$CONFIG" --split train --plan-only
"$PYTHON" -m training.cache --config "$CONFIG" --split train --worker 0/2 --threads 1 &
first=$!
"$PYTHON" -m training.cache --config "$CONFIG" --split train --worker 1/2 --threads 1 &
second=$!
# A bare `wait` returns 0 whatever the workers did: a failed worker must stop `make train`.
status=0
wait $first || status=$?
wait $second || status=$?
exit $status

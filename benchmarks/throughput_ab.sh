#!/usr/bin/env bash
# keras_lit at another revision against this checkout, same worker, alternating:
# tells a keras_lit regression from a change of machine.
#   bash benchmarks/throughput_ab.sh b023147 [rounds]
# Runs benchmarks/train_throughput.py's keras_lit worker (locked, B = 256, 20
# steps, oneDNN on) in fresh processes, with `keras_lit` imported from a
# temporary worktree of REV ("old") or from this checkout ("new").
set -euo pipefail
cd "$(dirname "$0")/.."
REV=${1:?usage: throughput_ab.sh REV [rounds]}
ROUNDS=${2:-3}
OLD=$(mktemp -d)
trap 'git worktree remove --force "$OLD" >/dev/null 2>&1 || true' EXIT
git worktree add --force --detach "$OLD" "$REV" >/dev/null 2>&1
for round in $(seq 0 $((ROUNDS - 1))); do
  for side in old new; do
    if [ "$side" = old ]; then path=$OLD; else path=$PWD; fi
    for jit in true false; do
      PYTHONPATH=$path TF_ENABLE_ONEDNN_OPTS=1 .venv/bin/python \
        benchmarks/train_throughput.py --worker --mode locked -b 256 \
        --steps 20 --warmup 3 --jit "$jit" 2>/dev/null | tail -1 |
        .venv/bin/python -c "import json, sys; d = json.load(sys.stdin); print('round $round $side jit=$jit', round(d['pairs_per_sec'], 1), 'pairs/s', round(d['step_ms_median'], 1), 'ms')"
    done
  done
done

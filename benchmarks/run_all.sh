#!/usr/bin/env bash
# Runs every benchmark in turn on a quiet machine and keeps their output in
# benchmarks/results/. `make bench` calls this. Takes ~40-50 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
mkdir -p benchmarks/results
export TF_CPP_MIN_LOG_LEVEL=3
bash benchmarks/setup_peer_venv.sh
for script in train_throughput precompute_speedup distributed_scaling \
              zero_shot_weights serving_latency batch_norm_step matmul_ceiling; do
  if [ -f "benchmarks/$script.py" ]; then
    echo "== $script"
    "$PY" "benchmarks/$script.py" | tee "benchmarks/results/$script.txt"
  fi
done
# Issue 17: losses at scale (each part prints its own table).
for part in loss time zero-shot; do
  echo "== loss_scaling $part"
  "$PY" benchmarks/loss_scaling.py "$part" | tee "benchmarks/results/loss_scaling_$part.txt"
done

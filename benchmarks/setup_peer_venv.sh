#!/usr/bin/env bash
# Creates the OpenCLIP (peer) venv used by benchmarks/train_throughput.py.
# The commands are the ones that resolve on this 2-core CPU machine (see
# ../shared/peers/README.md): CPU torch 2.13.0, torchvision 0.28.0 and
# open_clip_torch 3.3.0 installed without its heavy optional deps.
set -euo pipefail
VENV=${PEER_VENV:-"$(dirname "$0")/.peer_venv"}
PYTHON=${PYTHON:-python3}
if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import open_clip" 2>/dev/null; then
  echo "peer venv ready: $VENV"; exit 0
fi
"$PYTHON" -m venv "$VENV"
"$VENV/bin/pip" install --quiet torch==2.13.0
"$VENV/bin/pip" install --quiet torch==2.13.0 torchvision==0.28.0
"$VENV/bin/pip" install --quiet --no-deps open_clip_torch==3.3.0
"$VENV/bin/pip" install --quiet torch==2.13.0 ftfy regex tqdm huggingface_hub safetensors timm
"$VENV/bin/pip" check
echo "peer venv ready: $VENV"

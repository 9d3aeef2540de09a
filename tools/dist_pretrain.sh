#!/usr/bin/env bash
# Distributed DINO pretraining: bash tools/dist_pretrain.sh CONFIG NUM_PROCS [pretrain.py args]
# Multi-node: set NNODES, NODE_RANK, MASTER_ADDR and PORT on every node, as in mmseg's scripts.
# NCCL on GPUs, gloo on CPU (chosen by tools/pretrain.py).
set -euo pipefail
CONFIG=$1
NPROCS=$2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PY="${PYTHON:-$( [ -x "$ROOT/.venv/bin/python" ] && echo "$ROOT/.venv/bin/python" || echo python3 )}"

PYTHONPATH="$ROOT:${PYTHONPATH:-}" exec "$PY" -m torch.distributed.run \
    --nnodes="$NNODES" --node_rank="$NODE_RANK" --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$NPROCS" --master_port="$PORT" \
    "$ROOT/tools/pretrain.py" "$CONFIG" --launcher pytorch "${@:3}"

#!/usr/bin/env bash
# Shared torchrun launcher: bash tools/dist_run.sh TOOL NUM_POSITIONAL [POSITIONAL...] NPROCS [args]
# Used by dist_pretrain.sh, dist_train.sh and dist_test.sh. Multi-node: set NNODES, NODE_RANK,
# MASTER_ADDR and PORT on every node, as in mmseg's scripts. The tool picks NCCL on GPUs and
# gloo on CPU.
set -euo pipefail
TOOL=$1
NPOS=$2
shift 2
POSITIONAL=("${@:1:$NPOS}")
NPROCS=${@:$((NPOS + 1)):1}
REST=("${@:$((NPOS + 2))}")
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PY="${PYTHON:-$( [ -x "$ROOT/.venv/bin/python" ] && echo "$ROOT/.venv/bin/python" || echo python3 )}"

PYTHONPATH="$ROOT:${PYTHONPATH:-}" exec "$PY" -m torch.distributed.run \
    --nnodes="${NNODES:-1}" --node_rank="${NODE_RANK:-0}" \
    --master_addr="${MASTER_ADDR:-127.0.0.1}" --master_port="${PORT:-29500}" \
    --nproc_per_node="$NPROCS" \
    "$ROOT/tools/$TOOL" "${POSITIONAL[@]}" --launcher pytorch "${REST[@]}"

#!/usr/bin/env bash
# Shared torchrun launcher: bash tools/dist_run.sh TOOL NUM_POSITIONAL [POSITIONAL...] NPROCS [args]
# Used by dist_pretrain.sh, dist_train.sh and dist_test.sh. The tool picks NCCL on GPUs and
# gloo on CPU.
# One node: nothing to set; the rendezvous port is PORT or MASTER_PORT, else a free one (two
# jobs on one machine do not collide). Several nodes: set NNODES, NODE_RANK, MASTER_ADDR and
# PORT (or MASTER_PORT) on every node, as in mmseg's scripts; a missing MASTER_ADDR or port is
# an error, not a hang. DRY_RUN=1 prints the torchrun command instead of running it.
set -euo pipefail
if [ $# -lt 2 ]; then
    echo "usage: dist_run.sh TOOL NUM_POSITIONAL [POSITIONAL...] NPROCS [args]" >&2
    exit 2
fi
TOOL=$1
NPOS=$2
shift 2
if [ $# -lt $((NPOS + 1)) ]; then
    echo "dist_run.sh: $TOOL needs $NPOS positional argument(s) and NPROCS, got: $*" >&2
    exit 2
fi
POSITIONAL=("${@:1:$NPOS}")
NPROCS=${*:$((NPOS + 1)):1}
REST=("${@:$((NPOS + 2))}")
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PY="${PYTHON:-$( [ -x "$ROOT/.venv/bin/python" ] && echo "$ROOT/.venv/bin/python" || echo python3 )}"

NNODES=${NNODES:-1}
PORT=${PORT:-${MASTER_PORT:-}}
if [ "$NNODES" -gt 1 ]; then
    if [ -z "${MASTER_ADDR:-}" ] || [ -z "$PORT" ]; then
        echo "dist_run.sh: NNODES=$NNODES needs MASTER_ADDR and PORT (or MASTER_PORT) set on" \
             "every node (the address and port of node 0)" >&2
        exit 2
    fi
elif [ -z "$PORT" ]; then  # a free port: the fixed 29500 made two jobs on one node collide
    PORT=$("$PY" -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
fi

CMD=("$PY" -m torch.distributed.run
     --nnodes="$NNODES" --node_rank="${NODE_RANK:-0}"
     --master_addr="${MASTER_ADDR:-127.0.0.1}" --master_port="$PORT"
     --nproc_per_node="$NPROCS"
     "$ROOT/tools/$TOOL" ${POSITIONAL[@]+"${POSITIONAL[@]}"} --launcher pytorch
     ${REST[@]+"${REST[@]}"})
if [ "${DRY_RUN:-0}" = 1 ]; then
    echo "${CMD[@]}"
    exit 0
fi
PYTHONPATH="$ROOT:${PYTHONPATH:-}" exec "${CMD[@]}"

#!/usr/bin/env bash
# Distributed DINO pretraining: bash tools/dist_pretrain.sh CONFIG NUM_PROCS [pretrain.py args]
# (NNODES, NODE_RANK, MASTER_ADDR, PORT from the environment; see dist_run.sh)
exec bash "$(dirname "$0")/dist_run.sh" pretrain.py 1 "$@"

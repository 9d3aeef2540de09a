#!/usr/bin/env bash
# Distributed training: bash tools/dist_train.sh CONFIG NUM_GPUS [train.py args]
# (NNODES, NODE_RANK, MASTER_ADDR, PORT from the environment; see dist_run.sh)
exec bash "$(dirname "$0")/dist_run.sh" train.py 1 "$@"

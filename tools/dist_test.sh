#!/usr/bin/env bash
# Distributed testing: bash tools/dist_test.sh CONFIG CHECKPOINT NUM_GPUS [test.py args]
# (NNODES, NODE_RANK, MASTER_ADDR, PORT from the environment; see dist_run.sh)
exec bash "$(dirname "$0")/dist_run.sh" test.py 2 "$@"

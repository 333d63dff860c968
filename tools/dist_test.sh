#!/usr/bin/env bash
# Distributed testing with torchrun (usage below; `mmseg-cdcl dist_test` runs it installed).
USAGE="usage: dist_test.sh CONFIG CHECKPOINT GPUS [test.py options]
Tests CHECKPOINT on CONFIG's test data with tools/test.py in GPUS processes per machine (torchrun).
Several machines: NNODES=2 NODE_RANK=0|1 MASTER_ADDR=<node 0 address> PORT=29500 on each."
case "${1:-}" in -h | --help) echo "$USAGE"; exit 0 ;; esac
if [ $# -lt 3 ]; then
    echo "$USAGE" >&2
    echo "dist_test.sh: expected CONFIG, CHECKPOINT and GPUS, got $# argument(s)" >&2
    exit 2
fi
CONFIG=$1
CHECKPOINT=$2
GPUS=$3
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}

PYTHONPATH="$(dirname "$0")/..":$PYTHONPATH \
torchrun --nnodes="$NNODES" --node_rank="$NODE_RANK" --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$GPUS" --master_port="$PORT" \
    "$(dirname "$0")/test.py" "$CONFIG" "$CHECKPOINT" --launcher pytorch "${@:4}"

#!/usr/bin/env bash
# Distributed training with torchrun (usage below; `mmseg-cdcl dist_train` runs it installed).
USAGE="usage: dist_train.sh CONFIG GPUS [train.py options]
Trains CONFIG with tools/train.py in GPUS processes per machine (torchrun).
Several machines: NNODES=2 NODE_RANK=0|1 MASTER_ADDR=<node 0 address> PORT=29500 on each."
case "${1:-}" in -h | --help) echo "$USAGE"; exit 0 ;; esac
if [ $# -lt 2 ]; then
    echo "$USAGE" >&2
    echo "dist_train.sh: expected CONFIG and GPUS, got $# argument(s)" >&2
    exit 2
fi
CONFIG=$1
GPUS=$2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}

PYTHONPATH="$(dirname "$0")/..":$PYTHONPATH \
torchrun --nnodes="$NNODES" --node_rank="$NODE_RANK" --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$GPUS" --master_port="$PORT" \
    "$(dirname "$0")/train.py" "$CONFIG" --launcher pytorch "${@:3}"

#!/usr/bin/env bash
# Do training processes that share one GPU add up? Runs `bench_train.py` 1, 4 and 8 at once (one
# thread each) and prints each count's summed train-epoch rate and its ratio to one process.
#
#     bash scripts/bench_sharing.sh [size] [device]      (defaults: 64 cuda)
set -euo pipefail
SIZE=${1:-64}
DEVICE=${2:-cuda}
export OMP_NUM_THREADS=1
tmp=$(mktemp -d)
together() {
    for i in $(seq "$1"); do
        python3 scripts/bench_train.py --size "$SIZE" --batch-size 32 --images 6400 --device "$DEVICE" > "$tmp/$i.txt" &
    done
    wait
    awk '/^train epoch/ {s += $3} END {printf "%.1f", s}' "$tmp"/*.txt
    rm -f "$tmp"/*.txt
}
one=$(together 1)
echo "1 process: $one img/s"
for n in 4 8; do
    sum=$(together "$n")
    echo "$n processes: $sum img/s together, ratio $(awk -v a="$sum" -v b="$one" 'BEGIN {printf "%.2f", a / b}')"
done

#!/usr/bin/env bash
# GPU numbers in one go, inside a time budget: the 224 px training benchmark, then the phantom
# experiment (`chexbal experiment experiments/phantom.toml`, resuming whatever is already done) on
# the GPU, then its report. Whatever is unfinished at
# the deadline is left out (the report marks the gaps); everything lands in $OUT as at most 8 files.
#
#     OUT=gpu-out BUDGET=540 bash scripts/gpu_numbers.sh
#
# Written for a lent GPU machine with PyTorch but without chexbal's other packages: wheels in .whl/
# are installed first when that folder exists.
set -uo pipefail
OUT=${OUT:-gpu-out}
BUDGET=${BUDGET:-540}   # seconds for the whole script
PARALLEL=${PARALLEL:-10} # single-thread training processes sharing the GPU
mkdir -p "$OUT"
exec > >(tee "$OUT/log.txt") 2>&1
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
say() { echo "[$(date +%T) +${SECONDS}s] $*"; }

say "machine"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, zarr, torchxrayvision, pandas, numpy; print('torch', torch.__version__, 'zarr', zarr.__version__, 'pandas', pandas.__version__, 'numpy', numpy.__version__)" || exit 1
python3 -m chexbal.cli --help > /dev/null || exit 1

say "bench_train: eager and compiled (CUDA graphs), 64 and 224 px (bf16 autocast where the GPU has it)"
for compile in "" "--compile"; do
    for batch in 32 64; do
        python3 scripts/bench_train.py --size 64 --batch-size $batch --images 6400 --device cuda $compile | tee -a "$OUT/bench.txt"
    done
    for batch in 32 64 128; do
        python3 scripts/bench_train.py --size 224 --batch-size $batch --images 3200 --device cuda $compile | tee -a "$OUT/bench.txt"
    done
done

say "prepare the phantom (every core)"
python3 -m chexbal.cli prepare --frac 1 --workers "$(nproc)" || exit 1
sha256sum data/phantom-64/index.csv
python3 -m chexbal.cli prepare --frac 0.1 --workers "$(nproc)" || exit 1
sha256sum data/phantom-64/subsets/frac-0.1.csv

left=$((BUDGET - SECONDS - 110)) # keep time for the copies and the report
say "experiment, ${left}s left for it"
timeout -s TERM "$left" python3 -m chexbal.cli experiment experiments/phantom.toml --parallel "$PARALLEL"
say "packing the runs (the report can be remade from them)"
find runs/phantom-64 ! -name "*.pt" -type f | tar czf "$OUT/runs.tar.gz" -T -
tar czf "$OUT/gan-and-logs.tar.gz" --exclude=last.pt runs/gan runs/experiment data/phantom-64/synthetic/*/provenance.json
nvidia-smi --query-gpu=name,utilization.gpu,memory.used --format=csv,noheader
say "report of what finished"
python3 -m chexbal.cli experiment experiments/phantom.toml --publish-only && tar czf "$OUT/report.tar.gz" docs/experiment
ls -la "$OUT"
say "done"

#!/usr/bin/env bash
# GPU numbers in one go, inside a time budget: the training benchmarks, then a plan of the phantom
# experiment (`chexbal experiment $PLAN`, resuming whatever is already done) on the GPU, then its
# report. Whatever is unfinished at the deadline is left out (the report marks the gaps); the runs
# are packed into $OUT every minute while the plan runs, so a call cut short still returns what
# finished. Everything lands in $OUT as at most 8 files.
#
#     OUT=gpu-out BUDGET=540 bash scripts/gpu_numbers.sh
#
# The default plan, experiments/phantom-gpu.toml, is phantom.toml's 50% and 100% part, compiled
# (eager when the benchmark finds compiling slower here): a lent machine starts bare, the 1% and 10%
# parts run on the CPU, and a regimen is run whole on one machine. Trainings finished elsewhere
# travel as markers (`scripts/gpu_state.py pack WORKTREE gpu-state/done.tar.gz`, carry gpu-state)
# and are skipped. Its finished runs come back in runs.tar.gz; `scripts/gpu_state.py merge` adds them
# to the CPU's worktree without touching a run there, and they count as done tasks of phantom.toml.
# A run unfinished at the deadline is lost: its checkpoint (84 MB) is over what comes back. A 50% run
# is about 850,000 images: no benchmark starts after BENCH_SECONDS, and BENCH=0 skips them (a second
# call on the warm machine gives the plan all of its budget).
#
# Written for a lent GPU machine with PyTorch but without chexbal's other packages: the wheels
# scripts/gpu_wheels.sh puts in .whl/ (carry it) are installed first when that folder exists.
set -uo pipefail
OUT=${OUT:-gpu-out}
BENCH=${BENCH:-1}        # 0: skip the benchmarks (a second call on a warm machine, say)
BENCH_SECONDS=${BENCH_SECONDS:-180} # no benchmark starts after this many seconds
BUDGET=${BUDGET:-540}   # seconds for the whole script
PLAN=${PLAN:-experiments/phantom-gpu.toml}
PARALLEL=${PARALLEL:+--parallel $PARALLEL} # processes at once; default: the runner's (8 per GPU at 64 px)
mkdir -p "$OUT"
exec > >(tee "$OUT/log.txt") 2>&1
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if [ -d .whl ]; then # scripts/gpu_wheels.sh made it
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH="$PYTHONPATH:/tmp/site:$PWD/.whl/site"
fi
say() { echo "[$(date +%T) +${SECONDS}s] $*"; }

say "machine"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, zarr, torchxrayvision, pandas, numpy; print('torch', torch.__version__, 'zarr', zarr.__version__, 'pandas', pandas.__version__, 'numpy', numpy.__version__)" || exit 1
python3 -m chexbal.cli --help > /dev/null || exit 1

bench() { # SIZE BATCH IMAGES [--compile]; none starts after BENCH_SECONDS (the plan needs the rest)
    local name="/tmp/bench-$1-$2${4:+-compiled}.txt" limit=60
    [ -n "${4:-}" ] && limit=150 # compiling DenseNet-121 and recording its graphs takes a minute or more
    if ((SECONDS > BENCH_SECONDS)); then say "skipped: bench_train $*"; return; fi
    timeout $limit python3 scripts/bench_train.py --size "$1" --batch-size "$2" --images "$3" --device cuda ${4:-} | tee "$name" | tee -a "$OUT/bench.txt"
}
epoch_rate() { awk '/^train epoch/ {print $3}' "$1" 2>/dev/null; }
if [ "$BENCH" = 1 ]; then
    rm -f /tmp/bench-*.txt /tmp/plan-eager.toml
    say "bench_train: eager and compiled (CUDA graphs), 64 and 224 px, bf16 autocast; the headline pairs first"
    for args in "64 32 3200" "224 64 1600" "64 64 3200" "224 128 1600" "224 32 1600"; do
        bench $args
        bench $args --compile
    done
    eager=$(epoch_rate /tmp/bench-64-32.txt) compiled=$(epoch_rate /tmp/bench-64-32-compiled.txt)
    if ! awk -v c="${compiled:-0}" -v e="${eager:-0}" 'BEGIN { exit !(c > e) }'; then
        say "compiled did not beat eager at 64 px, batch 32 (${compiled:-no result} against ${eager:-no result} img/s): the plan trains eager"
        sed 's/^compile = true/compile = false/' "$PLAN" > /tmp/plan-eager.toml && PLAN=/tmp/plan-eager.toml
    fi
elif [ -f /tmp/plan-eager.toml ]; then # an earlier call on this warm machine chose eager: its runs resume as they began
    PLAN=/tmp/plan-eager.toml
fi

say "prepare the phantom (every core)"
python3 -m chexbal.cli prepare --frac 1 --workers "$(nproc)" || exit 1
sha256sum data/phantom-64/index.csv
for frac in 0.5; do
    python3 -m chexbal.cli prepare --frac $frac --workers "$(nproc)" || exit 1
    sha256sum data/phantom-64/subsets/frac-$frac.csv
done
if [ -f gpu-state/done.tar.gz ]; then
    say "the trainings finished elsewhere: $(tar tzf gpu-state/done.tar.gz | grep -c selected-seed) (skipped)"
    tar xzf gpu-state/done.tar.gz
fi

left=$((BUDGET - SECONDS - 110)) # keep time for the copies and the report
pack() {  # the runs without checkpoints (the report can be remade from them), written whole or not at all;
    # $1 names the temporary files, so a tar left running by the stopped packer never shares one with the last pack
    find runs/phantom-64 ! -name "*.pt" -type f 2>/dev/null | tar czf "$OUT/.runs-$1.tar.gz" -T - && mv "$OUT/.runs-$1.tar.gz" "$OUT/runs.tar.gz"
    tar czf "$OUT/.logs-$1.tar.gz" --exclude=last.pt runs/gan runs/diffusion runs/experiment \
        data/phantom-64/synthetic/*/provenance.json 2>/dev/null; mv "$OUT/.logs-$1.tar.gz" "$OUT/gan-and-logs.tar.gz"
}
say "experiment $PLAN, ${left}s left for it"
( while sleep 60; do pack running; done ) & packer=$!
# shellcheck disable=SC2086 # PARALLEL is empty or two words
timeout -s TERM "$left" python3 -m chexbal.cli experiment "$PLAN" $PARALLEL
kill "$packer" 2>/dev/null
say "packing the runs"
pack last
rm -f "$OUT"/.runs-running.tar.gz "$OUT"/.logs-running.tar.gz
nvidia-smi --query-gpu=name,utilization.gpu,memory.used --format=csv,noheader
publish=$(python3 -c "import sys, tomllib; print(tomllib.load(open(sys.argv[1], 'rb')).get('publish', ''))" "$PLAN")
if [ -n "$publish" ]; then # a plan without a publication (phantom-gpu.toml) is reported here, with the CPU's runs
    say "report of what finished"
    python3 -m chexbal.cli experiment "$PLAN" --publish-only && tar czf "$OUT/report.tar.gz" "$publish"
fi
ls -la "$OUT"
say "done"

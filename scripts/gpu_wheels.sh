#!/usr/bin/env bash
# The packages chexbal needs that a lent GPU machine's image lacks (device tool's KINDS.md lists what
# it has: torch, numpy, pandas, scikit-learn, typer, rich, huggingface-hub, ...), as wheels in .whl/
# for its Python 3.12 on x86-64, at the versions this project's tests ran with. scripts/gpu_numbers.sh
# installs them there; carry .whl (git ignores it). Downloads from the package registry, here.
# torchxrayvision's wheel (29 MB, mostly other datasets' label tables) would take the working tree
# over the 64 MiB a call carries: it travels unpacked in .whl/site/ with only the CheXpert labels
# the phantom draws from.
#
#     bash scripts/gpu_wheels.sh && du -sh .whl
set -euo pipefail
WHEELS=(
    zarr==3.1.6 numcodecs==0.16.6 donfig==0.8.1.post1 google-crc32c==1.9.0  # the image store
    torchxrayvision==1.5.7 diffusers==0.42.1 submitit==1.5.4  # not grad-cam: no wheel, and only the report (not run there) uses it
)
rm -rf .whl && mkdir .whl
for platform in manylinux_2_28_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64; do
    platforms+=(--platform "$platform")
done
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    "${platforms[@]}" --platform any -d .whl "${WHEELS[@]}"
xrv=(.whl/torchxrayvision-*.whl)
python3 -m zipfile -e "${xrv[0]}" .whl/site && rm "${xrv[0]}"
find .whl/site/torchxrayvision/data -type f ! -name chexpert_train.csv.gz -delete
ls .whl && du -sh .whl

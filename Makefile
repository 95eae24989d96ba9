# chexbal. `make demo` runs the whole pipeline on the embedded phantom data; `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CHEXBAL := $(BIN)/chexbal
# torch is pinned here (pyproject only bounds it) so a fresh install takes the tested build.
TORCH ?= torch==2.14.1 torchvision==0.29.1
DEMO_FRAC ?= 0.01
DEMO_EPOCHS ?= 5
DEMO_ARMS ?= none standard oversample gan
DEMO_RUNS := runs/demo
DEMO_RUN := --lr 0.001 --batch-size 32 --optimizer adam --epochs $(DEMO_EPOCHS) --split-seed 0 --runs $(DEMO_RUNS)
GAN_STEPS ?= 5250
DATA ?=

.PHONY: help install lint test test-fast demo experiment generator diffusion reproduce bench clean-runs

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(CHEXBAL): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e '.[test]'
	touch $@

install: $(CHEXBAL)  ## create .venv and install chexbal with its test tools

lint: install  ## ruff (lint and format check) and the layout limits: functions under 60 lines, at most 6 positional parameters
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python scripts/check_shape.py

# Two pytest-xdist workers, a test file to each at a time (a file's module fixtures are built once);
# tests/conftest.py gives each worker its share of the cores.
PYTEST_WORKERS ?= -n 2 --dist loadfile

test: install  ## run the whole test suite (what CI runs), two workers at a time
	$(BIN)/python -m pytest -q $(PYTEST_WORKERS)

test-fast: install  ## the tests without the slow ones (network training): use while developing
	$(BIN)/python -m pytest -q $(PYTEST_WORKERS) -m "not slow"

demo: install  ## the main job: phantom data, shipped generator, none/standard/oversample/GAN at 1%, report
	$(CHEXBAL) prepare --frac $(DEMO_FRAC)
	$(CHEXBAL) generate --frac $(DEMO_FRAC)
	$(MAKE) --no-print-directory -j2 $(addprefix demo-arm-,$(DEMO_ARMS))
	$(CHEXBAL) gan-eval --n 1000 --classifier $(DEMO_RUNS)/phantom-64/frac-$(DEMO_FRAC)/none/lr0.001-bs32-adam-seed0 \
	  --out $(DEMO_RUNS)/phantom-64/gan-eval.json
	$(CHEXBAL) report --name demo --runs $(DEMO_RUNS)
	@echo "report: $(CURDIR)/reports/demo/report.html"

# Two single-thread trainings side by side out-run one two-thread training on a 2-core CPU.
demo-arm-%: install
	OMP_NUM_THREADS=1 $(CHEXBAL) sweep --frac $(DEMO_FRAC) --aug $* $(DEMO_RUN)

experiment: install  ## the fair phantom experiment (experiments/phantom.toml); resumable; publishes docs/experiment/
	$(CHEXBAL) experiment experiments/phantom.toml

DIFFUSION_STEPS ?= 8000
diffusion: install  ## train the pool diffusion model on the phantom and ship it (this 2-core CPU: about 2 h at 1 thread)
	$(CHEXBAL) prepare --frac 1
	OMP_NUM_THREADS=1 $(CHEXBAL) train-diffusion --frac 1 --steps $(DIFFUSION_STEPS) \
	  --run-dir runs/diffusion/phantom-64/frac-1 $(if $(wildcard runs/diffusion/phantom-64/frac-1/last.pt),--resume)
	cp runs/diffusion/phantom-64/frac-1/generator.pt chexbal/weights/phantom-64-diffusion.pt

generator: install  ## retrain the shipped phantom generator (this 2-core CPU: about 90 min)
	$(CHEXBAL) prepare --frac 1
	$(CHEXBAL) train-gan --frac 1 --steps $(GAN_STEPS) --negatives "Pleural Other" --negatives-from 4750 \
	  --run-dir runs/gan/phantom-64/frac-1 $(if $(wildcard runs/gan/phantom-64/frac-1/last.pt),--resume)
	cp runs/gan/phantom-64/frac-1/generator.pt chexbal/weights/phantom-64-generator.pt

reproduce: install  ## the fair protocol on real CheXpert (experiments/chexpert.toml, GPUs): make reproduce DATA=/path/to/CheXpert-v1.0-small
	@test -n "$(DATA)" || { echo "usage: make reproduce DATA=/path/to/CheXpert-v1.0-small"; exit 2; }
	$(CHEXBAL) experiment experiments/chexpert.toml --root "$(DATA)"

bench: install  ## the speed benchmarks (each ends with `ratio <value>`)
	$(BIN)/python scripts/bench_prepare.py
	$(BIN)/python scripts/bench_train.py
	$(BIN)/python scripts/bench_generate.py
	$(BIN)/python scripts/bench_cams.py
	$(BIN)/python scripts/bench_frechet.py
	$(BIN)/python scripts/bench_scoring.py
	$(BIN)/python scripts/bench_generator_step.py

clean-runs:  ## delete runs/ and reports/ (prepared data stays)
	rm -rf runs reports

# chexbal: `make demo` runs the whole pipeline on the embedded phantom data; `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch is pinned here (pyproject only bounds it) so a fresh install takes the tested build.
TORCH ?= torch==2.14.1 torchvision==0.29.1
FRAC ?= 0.01

.PHONY: help install test demo clean-data

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(BIN)/chexbal: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e '.[test]'
	touch $@

install: $(BIN)/chexbal  ## create .venv and install chexbal with its test tools

test: install  ## run the test suite
	$(BIN)/python -m pytest -q

demo: install  ## the main job on the embedded phantom data
	$(BIN)/chexbal prepare --frac $(FRAC)
	$(BIN)/chexbal info

# fpnpipe: `make repro` runs the pipeline, `make compare` the comparison with the baselines (Table 1, Figure 4),
# `make test` runs the tests. Each creates the environment first.
SHELL := /bin/bash
UV_VERSION := 0.13.9
VENV := .venv
# uv from PATH if present, else a private copy bootstrapped with pip into .tools/
UV := $(or $(shell command -v uv 2>/dev/null),$(CURDIR)/.tools/bin/uv)
# Stage commands in dvc.yaml call `python`: make it the project's interpreter.
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export UV_PROJECT_ENVIRONMENT := $(CURDIR)/$(VENV)

.PHONY: env repro compare test lint bench seeds frontier clean-outputs

env: $(VENV)/.synced

$(CURDIR)/.tools/bin/uv:
	python3 -m venv .tools
	.tools/bin/pip install --quiet uv==$(UV_VERSION)

$(VENV)/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen
	touch $@

repro: env
	dvc repro

compare: env
	dvc repro compare/dvc.yaml

test: env
	pytest -q

lint: env
	ruff check fpnpipe stages tests bench
	mypy

# Three training seeds of the current params (same data and test set), then their mean and spread.
seeds: env
	dvc exp run --queue -S 'seed.train=0,1,2'
	dvc exp run --run-all --jobs 1
	python -m stages seeds --out reports/seeds.json

# The accuracy-interpretability frontier: loss.lambda_fine x three training seeds (15 runs), then the figure.
FRONTIER_LAMBDAS ?= 0,0.1,0.3,1,3
frontier: env
	dvc exp run --queue -S 'loss.lambda_fine=$(FRONTIER_LAMBDAS)' -S 'seed.train=0,1,2'
	dvc exp run --run-all --jobs 1
	python -m stages frontier

bench: env
	python bench/train_step.py

clean-outputs:
	rm -rf data/processed models reports dvclive

# fpnpipe: `make repro` runs the pipeline, `make test` runs the tests. Both create the environment first.
SHELL := /bin/bash
UV_VERSION := 0.13.9
VENV := .venv
# uv from PATH if present, else a private copy bootstrapped with pip into .tools/
UV := $(or $(shell command -v uv 2>/dev/null),$(CURDIR)/.tools/bin/uv)
# Stage commands in dvc.yaml call `python`: make it the project's interpreter.
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export UV_PROJECT_ENVIRONMENT := $(CURDIR)/$(VENV)

.PHONY: env repro test lint bench paper clean-outputs

env: $(VENV)/.synced

$(CURDIR)/.tools/bin/uv:
	python3 -m venv .tools
	.tools/bin/pip install --quiet uv==$(UV_VERSION)

$(VENV)/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen
	touch $@

repro: env
	dvc repro

test: env
	pytest -q

lint: env
	ruff check fpnpipe stages tests bench profiles
	mypy

bench: env
	python bench/train_step.py

# The paper profile (profiles/paper.yaml) as one DVC experiment; PRETRAINED = torchvision's VGG-16 ImageNet file.
paper: env
	@test -n "$(PRETRAINED)" || { echo "usage: make paper PRETRAINED=/path/to/vgg16-397923af.pth"; exit 2; }
	dvc exp run $$(python profiles/set_params.py profiles/paper.yaml) -S model.pretrained=$(PRETRAINED)

clean-outputs:
	rm -rf data/processed models reports dvclive

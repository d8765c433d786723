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

# Which PyTorch build the environment gets. default: uv.lock as it is, i.e. PyPI's torch, which is a CUDA
# build on Linux (about 3.3 GB of downloads) and runs on CPU and GPU alike. cpu: PyTorch's CPU-only build of
# the same versions from TORCH_CPU_SOURCE, everything else from uv.lock, no CUDA libraries (README, "CPU-only
# install"). Once built, the cpu choice sticks to .venv until `make env FPNPIPE_TORCH=default`.
FPNPIPE_TORCH ?= $(if $(wildcard $(VENV)/.synced-cpu),cpu,default)
TORCH_CPU_SOURCE ?= --index-url https://download.pytorch.org/whl/cpu
# The CPU builds to install: uv.lock's torch and torchvision versions with the +cpu local version.
TORCH_CPU_PINS ?= $(shell $(UV) export --frozen --no-hashes --no-emit-project --no-header --no-annotate 2>/dev/null \
	| sed -nE 's/^(torch|torchvision)==([^ ;]+).*/\1==\2+cpu/p')
# What the CPU build replaces: torch, torchvision and the Linux-only CUDA packages they pull in (triton,
# cuda-*, nvidia-*; nvidia-ml-py, which dvclive needs on every platform, stays).
CUDA_PACKAGES = $(shell $(UV) export --frozen --no-hashes --no-emit-project --no-header --no-annotate 2>/dev/null \
	| sed -nE "s/^(torch|torchvision)==.*/\1/p; s/^(triton|cuda-[a-z0-9-]+|nvidia-[a-z0-9-]+)==.*sys_platform == 'linux'.*/\1/p")

ifeq ($(FPNPIPE_TORCH),cpu)
SYNCED := $(VENV)/.synced-cpu
else ifeq ($(FPNPIPE_TORCH),default)
SYNCED := $(VENV)/.synced
else
$(error FPNPIPE_TORCH must be default or cpu, got '$(FPNPIPE_TORCH)')
endif

.PHONY: env repro compare test lint bench paper seeds frontier clean-outputs

env: $(SYNCED)

$(CURDIR)/.tools/bin/uv:
	python3 -m venv .tools
	.tools/bin/pip install --quiet uv==$(UV_VERSION)

$(VENV)/.synced: pyproject.toml uv.lock | $(UV)
	rm -f $(VENV)/.synced-cpu
	$(UV) sync --frozen
	touch $@

# The locked packages minus CUDA_PACKAGES (hash-checked, as `uv sync` would install them), then the CPU builds
# of torch and torchvision (pinned by version; their own dependencies are among the locked packages), then
# fpnpipe itself, editable as `uv sync` installs it.
$(VENV)/.synced-cpu: pyproject.toml uv.lock | $(UV)
	rm -f $(VENV)/.synced
	$(UV) venv --allow-existing $(VENV)
	$(UV) export --quiet --frozen --no-emit-project --no-header --no-annotate \
		$(addprefix --no-emit-package ,$(CUDA_PACKAGES)) -o $(VENV)/requirements-cpu.txt
	$(UV) pip sync --python $(VENV)/bin/python $(VENV)/requirements-cpu.txt
	$(UV) pip install --python $(VENV)/bin/python --no-deps $(TORCH_CPU_SOURCE) $(TORCH_CPU_PINS)
	$(UV) pip install --python $(VENV)/bin/python --no-deps --editable .
	$(VENV)/bin/python -c "import torch, torchvision; assert torch.version.cuda is None, torch.version.cuda; \
		print('CPU-only torch', torch.__version__, 'torchvision', torchvision.__version__)"
	touch $@

repro: env
	dvc repro

compare: env
	dvc repro stages/compare/dvc.yaml

test: env
	pytest -q

lint: env
	ruff check fpnpipe stages tests bench profiles
	mypy

# Three training seeds of the current params (same data and test set), then their mean and spread.
seeds: env
	dvc exp run --queue -S 'seed.train=0,1,2'
	dvc exp run --run-all --jobs 1
	python -m stages seeds --out reports/seeds.json

# The accuracy-interpretability frontier: loss.lambda_fine x three training seeds (21 runs), then the figure.
FRONTIER_LAMBDAS ?= 0,0.1,0.3,1,3,10,30
frontier: env
	dvc exp run --queue -S 'loss.lambda_fine=$(FRONTIER_LAMBDAS)' -S 'seed.train=0,1,2'
	dvc exp run --run-all --jobs 1
	python -m stages frontier

bench: env
	python bench/train_step.py

# The paper profile (profiles/paper.yaml) as one DVC experiment; PRETRAINED = torchvision's VGG-16 ImageNet file.
paper: env
	@test -n "$(PRETRAINED)" || { echo "usage: make paper PRETRAINED=/path/to/vgg16-397923af.pth"; exit 2; }
	dvc exp run $$(python profiles/set_params.py profiles/paper.yaml) -S model.pretrained=$(PRETRAINED)

clean-outputs:
	rm -rf data/processed models reports dvclive

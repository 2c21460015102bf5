# attnres-scaling: thin wrappers over the `attnres` CLI. `make help` lists the targets.
SHELL := /bin/bash
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SWEEP ?= demo
WORKERS ?= $(shell nproc)
# which torch build `make install` gets (README "Installing torch"): TORCH is a requirement or a wheel
# file; TORCH_INDEX, when set, is the only index pip reads it from (e.g. PyTorch's CPU wheel index)
TORCH ?= torch==2.13.0
TORCH_INDEX ?=
# measured here: glibc's mmap/trim thresholds cut page-fault cost of training processes (up to 1.6x)
export MALLOC_MMAP_THRESHOLD_ ?= 4294967296
export MALLOC_TRIM_THRESHOLD_ ?= 8589934592

.PHONY: help install demo test test-slow test-slurm test-all lint bench gpu-check figures data slurm-up slurm-down clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first, pinned: from pip's default index on Linux x86_64 this is the CUDA build (multi-GB);
	# TORCH_INDEX chooses another build, which the pin (==2.13.0) then accepts, local label and all
	$(BIN)/python -m pip install -q $(TORCH) $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)  ## create .venv and install the project (torch 2.13.0; TORCH_INDEX=URL picks the build)

data: install  ## prepare the default corpus (byte-level) under data/
	$(BIN)/attnres data prepare

demo: install  ## the embedded end-to-end run: data -> train the tiny ladder -> collect -> fit -> figures -> report
	$(BIN)/attnres data prepare
	$(BIN)/attnres plan $(SWEEP)
	$(BIN)/attnres launch $(SWEEP) --executor local --workers $(WORKERS)
	$(BIN)/attnres collect $(SWEEP)
	@$(MAKE) --no-print-directory results/$(SWEEP)/report.md
	@echo; echo "== $(SWEEP): effective-compute multiplier over the baseline (results/$(SWEEP)/report.md) =="
	@grep '^- Answer: ' results/$(SWEEP)/report.md | sed 's/^- //' || true
	@echo "figures: $$(ls results/$(SWEEP)/figures/*.png | tr '\n' ' ')"

# fits, figures and report are regenerated only when collect rewrote the parquet (it keeps the files,
# and their mtimes, when nothing changed), so a re-run of a finished demo takes seconds
results/%/report.md: results/%/runs.parquet results/%/curves.parquet
	$(BIN)/attnres report $*

test: install  ## the default test suite (fast; no slow and no Slurm tests)
	$(BIN)/pytest -q

test-slow: install  ## slow end-to-end tests (real corpus download, demo sweep with the local executor)
	$(BIN)/pytest -q -m slow

test-slurm: install  ## Slurm tests against a running single-node cluster (make slurm-up first)
	$(BIN)/pytest -q -m slurm

test-all: test test-slow test-slurm  ## everything CI runs (needs make slurm-up)

lint: install  ## ruff
	$(BIN)/ruff check attnres records corpus harness sweeps analysis tests bench

bench: install  ## benchmarks: AttnRes overhead ratios, collector and analysis speed, data preparation MB/s and memory
	$(BIN)/python bench/bench_models.py
	$(BIN)/python bench/bench_collect.py
	$(BIN)/python bench/bench_analysis.py
	$(BIN)/python bench/bench_coverage.py
	$(BIN)/python bench/bench_data.py

gpu-check: install  ## GPU-only checks (NCCL, bf16 + compile, memory/MFU at ~500M): one JSON + a table; DRY=1: CPU dry run
	$(BIN)/python bench/gpu_check.py $(if $(DRY),--dry)

figures: install  ## regenerate every figure and report under results/ from parquet alone
	@for d in results/*/; do [ -f $$d/runs.parquet ] || continue; \
	  $(BIN)/attnres report $$(basename $$d) || exit 1; done

slurm-up:  ## start a real single-node Slurm (root, Debian 12): munge, slurmdbd, slurmctld, slurmd
	bash scripts/slurm/setup-slurm.sh

slurm-down:  ## stop it
	bash scripts/slurm/stop-slurm.sh

clean:  ## remove the venv and caches (keeps data/, runs/ and results/)
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info

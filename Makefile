# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
RLIP   := $(VENV)/bin/rlip
STAMP  := $(VENV)/.installed
# torch 2.14.1 / torchvision 0.29.1 lie on this machine's disk (a CUDA build that runs on the CPU).
TORCH_PINS ?= torch==2.14.1 torchvision==0.29.1

.PHONY: setup demo reproduce test test-slow test-slurm test-browser lint bench clean-runs

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -c "import torch, torchvision" 2>/dev/null || $(PY) -m pip install -q $(TORCH_PINS)
	$(PY) -m pip install -q -e ".[dev]"
	@touch $(STAMP)

setup: $(STAMP)

# The end-to-end demo on the built-in data: two λ sweeps and the constrained families (the SLL classifier
# with a dense and with a CAM head, the FNE U-Net), Lipschitz and
# smoothed certificates, attacks (PGD/SegPGD/CosPGD/FGSM and the SEA ensemble), the leaderboard.
# ≈ 600 s on an idle 2-core machine once .venv exists (README, "What the demo shows": where it goes).
# Finished runs and existing records are reused, so a second `make demo` is much faster.
RUNS ?= zoo/runs
demo: $(STAMP)
	$(RLIP) data preview shapes --n 16 --out reports/preview_shapes.png
	$(RLIP) data preview lesions --n 16 --out reports/preview_lesions.png
	$(RLIP) zoo train zoo/shapes_cpu.toml --runs-dir $(RUNS)
	$(RLIP) zoo train zoo/lesions_unet_cpu.toml --runs-dir $(RUNS)
	$(RLIP) zoo train zoo/shapes_lip_cpu.toml --runs-dir $(RUNS)
	$(RLIP) zoo train zoo/lesions_fne_cpu.toml --runs-dir $(RUNS)
	$(RLIP) certify --runs-dir $(RUNS) --n 64
	$(RLIP) certify --runs-dir $(RUNS) --smoothing 0.25 --smoothing-n 200 --smoothing-n0 20 --n 16
	$(RLIP) attack --runs-dir $(RUNS) --eps 4/255,8/255 --attack all,sea --n 64 --steps 10
	$(RLIP) leaderboard --runs-dir $(RUNS) --out reports

# The 3-seed acceptance sweep of the shapes grid (not part of the demo): the demo's model, data and
# certify settings over the fuller grid the demo was cut from (λ = 1e-6 and 1e-4 too, 5 epochs, ε = 2/255 too),
# every λ trained with seeds 0, 1, 2, and the constrained classifiers sllnet_w16 / sllnet_cam_w16 with
# the same seeds (zoo/shapes_lip_cpu_seeds.toml; the dense sllnet_w16 has no masks, so the batch attack
# skips SegPGD/CosPGD/SEA for it with a note); the leaderboard reports mean ± std (n = 3).
REPRO_SPEC ?= zoo/shapes_cpu_seeds.toml
REPRO_LIP_SPEC ?= zoo/shapes_lip_cpu_seeds.toml
REPRO_RUNS ?= zoo/runs_reproduce
REPRO_OUT  ?= reports/reproduce
reproduce: $(STAMP)
	$(RLIP) zoo train $(REPRO_SPEC) --runs-dir $(REPRO_RUNS)
	$(RLIP) zoo train $(REPRO_LIP_SPEC) --runs-dir $(REPRO_RUNS)
	$(RLIP) certify --runs-dir $(REPRO_RUNS) --n 64
	$(RLIP) attack --runs-dir $(REPRO_RUNS) --eps 2/255,4/255,8/255 --attack all,sea --n 64 --steps 10
	$(RLIP) leaderboard --runs-dir $(REPRO_RUNS) --out $(REPRO_OUT)

test: $(STAMP)
	$(PY) -m pytest

test-slow: $(STAMP)
	$(PY) -m pytest -m slow

# Real engines (run by .ci/run): a single-node Slurm cluster (installed with apt when missing) running
# `rlip zoo train --executor slurm`, and headless Chromium on a generated leaderboard.html.
# Each skips with a "SKIP:" line only where it cannot run (not root, no apt-get).
test-slurm: $(STAMP)
	PY=$(abspath $(PY)) tests/engines/slurm.sh

test-browser: $(STAMP)
	$(PY) tests/engines/browser_check.py

lint: $(STAMP)
	$(VENV)/bin/ruff check .

bench: $(STAMP)
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b; done

clean-runs:
	rm -rf $(RUNS) reports/*.md reports/*.csv reports/*.json reports/*.html reports/*.png

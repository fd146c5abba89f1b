"""Whole-certify benchmark: the wall time of `rlip certify RUN --n 64` on the demo's two model kinds.

Trains (briefly: one epoch on a small split, plain cross-entropy / Dice, no penalty) a
`mresnet18_w8` on `shapes` and a `unet_i2i` (base width 8, no norm) on `lesions` into a temporary
folder, then certifies each run through the library entry point (`evaluations.lipschitz.run.certify_run`,
what `rlip certify RUN --n 64` calls) and prints ONE JSON object: per run, the split recorded in
the record's timings — export + upper bound, lower bounds (witnessed search and FNE test, under
`--lower-budget`), radii — the rest (loading the model and the data, the forward pass) and the
total, against the goal (≤ 20 s on an idle machine), plus the machine's load average.

Run: .venv/bin/python benchmarks/bench_certify_run.py [--threads 1] [--n 64] [--lower-budget S]
[--models mresnet18_w8,unet_i2i,mresnet18] (mresnet18: the full-width w64 run)
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

GOAL_S = 20.0
RUNS: dict[str, dict[str, Any]] = {
    "mresnet18_w8": {"data": "shapes", "data_options": {"n_train": 512, "n_test": 128, "image_size": 32}},
    # issue 24's "whole rlip certify of a w64 run": only with --models mresnet18 (a minute of training)
    "mresnet18": {"data": "shapes", "data_options": {"n_train": 256, "n_test": 128, "image_size": 32}},
    "unet_i2i": {
        "data": "lesions",
        "data_options": {"n_train": 256, "n_test": 128, "image_size": 32},
        "model_options": {"base_width": 8, "norm": "none"},
        "dice": True,
        "logit_scale": 100.0,
    },
}


def train_run(model: str, root: Path) -> tuple[Path, float]:
    """Train `model` for one short epoch into root/model; (run folder, seconds)."""
    from robustbench_lip.config import TrainConfig
    from robustbench_lip.training.train import train

    spec = dict(RUNS[model])
    cfg = TrainConfig(
        model=model, epochs=1, batch_size=32, device="cpu", sigma_points=8, sigma_iters=2,
        sigma_final_iters=2, **spec,
    )  # fmt: skip
    t0 = time.perf_counter()
    train(cfg, root / model)
    return root / model, time.perf_counter() - t0


def certify_once(run: Path, n: int, lower_budget: float | None) -> dict[str, Any]:
    """Certify `run` with n points (no record written); the timing split in seconds."""
    from robustbench_lip.evaluations.lipschitz.run import certify_run

    t0 = time.perf_counter()
    rec = certify_run(run, n=n, device="cpu", write=False, lower_budget_s=lower_budget)
    total = time.perf_counter() - t0
    t = rec.timings or {}
    split = {k: round(float(t.get(k) or 0.0), 3) for k in ("export_upper_s", "lower_s", "radii_s")}
    split["load_data_forward_s"] = round(total - sum(split.values()), 3)
    a = rec.lipschitz["A"]
    return {
        **split,
        "total_s": round(total, 3),
        "goal_s": GOAL_S,
        "meets_goal": total <= GOAL_S,
        "lower_budget_s": t.get("lower_budget_s"),
        "upper_A": a["upper"],
        "lower_A": a["lower"],
        "upper_R": (rec.lipschitz.get("R") or {}).get("upper"),
        "certified_accuracy": rec.certified_accuracy,
        "certified_miou": rec.certified_miou,
    }


def main() -> None:
    from robustbench_lip.evaluations.lipschitz.settings import DEFAULT_LOWER_BUDGET_S

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--lower-budget", type=float, default=DEFAULT_LOWER_BUDGET_S)
    ap.add_argument(
        "--models", default="mresnet18_w8,unet_i2i", help=f"comma-separated, of: {', '.join(RUNS)}"
    )
    opts = ap.parse_args()
    models = [m.strip() for m in opts.models.split(",") if m.strip()]
    if unknown := [m for m in models if m not in RUNS]:
        ap.error(f"unknown model(s) {unknown}; expected some of {list(RUNS)}")
    torch.set_num_threads(opts.threads)
    out: dict[str, Any] = {"threads": opts.threads, "n": opts.n, "load_before": os.getloadavg()}
    with tempfile.TemporaryDirectory() as tmp:
        for model in models:
            run, train_s = train_run(model, Path(tmp))
            out[model] = {"train_s": round(train_s, 1), **certify_once(run, opts.n, opts.lower_budget)}
    out["load_after"] = os.getloadavg()
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()

"""Hand-written run directories for the report tests: one result record written as the toolkit
writes it, and a grid of runs (λ × seed) whose values are drawn once from a seeded RNG."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from robustbench_lip.records import make_record, write_record

ARCH, DATA = "mresnet18_tiny", "shapes"
CREATED = "2026-11-24T01:00:00+00:00"
SEEDS = (0, 1, 2)
LAMS = (0.0, 1e-2)
RNG = np.random.default_rng(123)
# per (λ, seed): accuracy, L(A) upper, pgd accuracy (None: seed 2 of λ = 1e-2 was not attacked)
VALUES = {
    (lam, s): (float(RNG.uniform(0.5, 0.9)), float(RNG.uniform(2, 40)), float(RNG.uniform(0, 0.5)))
    for lam in LAMS
    for s in SEEDS
}


def write_result(
    run_dir: Path,
    name: str,
    kind: str,
    *,
    arch: str,
    data: str,
    settings: dict[str, Any],
    payload: dict[str, Any],
    created: str,
    wall_s: float = 1.0,
) -> None:
    """Write run_dir/results/<name>.json: a `kind` record of a classifier `arch` on `data`."""
    rec = make_record(
        kind,
        model={"arch": arch, "task": "classification"},
        dataset={"name": data},
        settings=settings,
        payload=payload,
        wall_s=wall_s,
    )
    rec["created"] = created
    write_record(run_dir / "results" / f"{name}.json", rec)


def _rec(run_dir: Path, name: str, kind: str, settings: dict[str, Any], payload: dict[str, Any]) -> None:
    write_result(
        run_dir, name, kind, arch=ARCH, data=DATA, settings=settings, payload=payload, created=CREATED
    )


def seed_run(root: Path, lam: float, seed: int, *, lr: float = 0.01, spec: str = "sp") -> None:
    """root/<spec>-ARCH-lam<λ>-s<seed>: train, certify and (but for λ = 1e-2, seed 2) attack
    records carrying VALUES[(λ, seed)]."""
    acc, up, pgd = VALUES[(lam, seed)]
    rd = root / f"{spec}-{ARCH}-lam{lam:g}-s{seed}"
    settings = {"model": ARCH, "data": DATA, "lam": lam, "reg_target": "A", "seed": seed, "epochs": 2}
    settings["lr"] = lr
    final = {"accuracy": acc, "precision": acc - 0.05, "miou": None}
    _rec(rd, "train", "train", settings, {"status": "finished", "history": [], "final": final})
    lip = {"A": {"upper": up, "lower": up / 4}, "R": None}
    _rec(rd, "certify-1", "certify", {"n": 8}, {"lipschitz": lip, "fne": None})
    if (lam, seed) == (1e-2, 2):
        return
    res = [{"attack": "pgd", "norm": "linf", "eps": 8 / 255, "steps": 5, "accuracy": pgd, "precision": 0.1}]
    payload = {"clean": final, "results": res, "task": "classifier", "objective": "cls", "n": 64}
    _rec(rd, "attack-1", "attack", {"eps": "8/255"}, payload)

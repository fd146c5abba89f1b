"""`attack_run`: attack a saved model (run folder or model file) and return its attack record.

Pipeline: find the data (evaluation.inputs: `data`, else the model's own dataset), load the model
(never executing code), attack it (evaluation.robustness.evaluate_attacks), assemble an
`AttackRecord` and write it to `<folder>/results/attack-<key>.json`, where <folder> is the run
folder, or the folder holding a model file (whose name is then part of the settings), and
`key` the settings key (records.store).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from robustbench_lip.attacks.eps import format_eps
from robustbench_lip.attacks.registry import ATTACKS, DEFAULT_STEPS, mask_only_names
from robustbench_lip.errors import RlipError
from robustbench_lip.evaluation.data_check import check_data
from robustbench_lip.evaluation.inputs import dataset_name, load_test_set, model_meta
from robustbench_lip.evaluation.robustness import Progress, evaluate_attacks
from robustbench_lip.records import AttackRecord, env_info, record_path, write_record
from robustbench_lip.tasks import Task

NEED_DATA = "pass --data NAME to say which dataset to attack on"


def attack_list(text: str | Sequence[str]) -> list[str]:
    """Attack names from "pgd,fgsm" or a list (lower-cased; "all" kept); RlipError for unknown names."""
    names = [t.strip().lower() for t in (text.split(",") if isinstance(text, str) else text)]
    for t in names:
        if t != "all" and t not in ATTACKS:
            raise RlipError(f"unknown attack {t!r}; expected one of {', '.join((*ATTACKS.names(), 'all'))}")
    return names


def attack_settings(
    eps: Sequence[float],
    attacks: Sequence[str],
    norm: str,
    steps: int,
    alpha: float | None,
    objective: str | None,
    data: str,
    n: int | None,
    seed: int,
    batch_size: int,
    model_file: str | None = None,
    preset: str | None = None,
    restarts: int = 1,
    other_data: bool = False,
) -> dict[str, Any]:
    """The record settings of an attack run (their key names the record file); `preset`,
    `restarts` and `other_data` (evaluation.data_check) only when set, so that the keys of earlier
    records stay valid."""
    s: dict[str, Any] = {
        "eps": [format_eps(e) for e in eps],
        "attack": list(attacks),
        "norm": norm,
        "steps": steps,
        "alpha": alpha,
        "objective": objective or "auto",
        "data": data,
        "n": n,
        "seed": seed,
        "batch_size": batch_size,
    }
    if model_file is not None:
        s["model_file"] = model_file
    if preset is not None:
        s["preset"], s["attack"] = preset, []
    if restarts != 1:
        s["restarts"] = restarts
    if other_data:
        s["other_data"] = True
    return s


def _dataset_name_or_fail(model_path: str | os.PathLike[str], data: str | None) -> tuple[str, Any]:
    meta = model_meta(model_path, need=None if data is not None else NEED_DATA)
    name = dataset_name(data, meta)
    if name is None:
        raise RlipError("the model does not say which dataset it was trained on; pass --data NAME")
    return name, meta


def attacks_for_run(run_dir: str | os.PathLike[str], attacks: Sequence[str]) -> tuple[list[str], list[str]]:
    """(attacks to run, attacks dropped) for one run of a batch: the mask-only attacks (SegPGD,
    CosPGD, SEA: attacks.registry.mask_only_names) are dropped for a classifier whose config says it
    predicts no masks (a dense head), so `--attack all,sea` over a runs folder attacks each run with
    what applies to it."""
    from robustbench_lip.evaluation.inputs import model_meta

    mask_only = mask_only_names()
    cfg = (model_meta(run_dir) or {}).get("model") or {}
    if cfg.get("task") != Task.CLASSIFICATION.value or cfg.get("num_mask_classes") is not None:
        return list(attacks), []
    keep = [a for a in attacks if a not in mask_only]
    return keep, [a for a in attacks if a in mask_only]


def planned_settings(
    run_dir: str | os.PathLike[str],
    eps: Sequence[float],
    attacks: Sequence[str],
    *,
    norm: str = "linf",
    steps: int | None = DEFAULT_STEPS,
    alpha: float | None = None,
    objective: str | None = None,
    data: str | None = None,
    n: int | None = None,
    seed: int = 0,
    batch_size: int = 64,
    preset: str | None = None,
    restarts: int = 1,
    other_data: bool = False,
) -> dict[str, Any]:
    """The settings `attack_run` records for a run folder, from its config.json alone."""
    name, _ = _dataset_name_or_fail(run_dir, data)
    return attack_settings(
        eps, attacks, norm, steps, alpha, objective, name, n, seed, batch_size, None, preset, restarts,
        other_data,
    )


def attack_run(
    model_path: str | os.PathLike[str],
    eps: Sequence[float],
    attacks: str | Sequence[str] = "pgd",
    *,
    norm: str = "linf",
    steps: int | None = DEFAULT_STEPS,
    alpha: float | None = None,
    objective: str | None = None,
    data: str | None = None,
    root: str | os.PathLike[str] | None = None,
    n: int | None = None,
    batch_size: int = 64,
    seed: int = 0,
    device: str | torch.device = "auto",
    progress: Progress | None = None,
    write: bool = True,
    preset: str | None = None,
    restarts: int = 1,
    other_data: bool = False,
    arch: str | None = None,
) -> AttackRecord:
    """Attack the model at `model_path` with `attacks` at each ε and return the record.

    eps: budgets in [0, 1] pixel units (ℓ∞) or ≥ 0 (ℓ2); other arguments as `evaluate_attacks`.
    preset: an attack protocol (`standard`, attacks.registry.protocols) replacing `attacks`; steps None: the
    protocol's own; restarts: of `sea`; other_data: allow data other than the run's own
    (evaluation.data_check); arch: of a bare state_dict (as `certify_run`), built at the data's
    size. n larger than the dataset is clamped (logged); the settings keep the n asked for. With
    `write`, the record goes to the folder's `results/` (see the module docstring)."""
    from robustbench_lip.device import resolve_device
    from robustbench_lip.modelio import load_model

    names = attack_list(attacks)
    path = Path(model_path)
    name, meta = _dataset_name_or_fail(path, data)
    dev = resolve_device(device)
    ds = load_test_set(name, root, meta)
    settings = attack_settings(
        eps, names, norm, steps, alpha, objective, ds.info.name, n, seed, batch_size,
        None if path.is_dir() else path.name, preset, restarts, other_data,
    )  # fmt: skip
    size = tuple(ds[0][0].shape) if arch else None
    model = load_model(path, arch=arch, device=str(dev), input_size=size)
    check_data(getattr(model, "config", None), ds.info, root, meta, other_data)
    t0 = time.perf_counter()
    payload = evaluate_attacks(
        model, ds, eps, names, norm, steps, alpha, n, batch_size, seed, objective, dev, progress=progress,
        preset=preset, restarts=restarts,
    )  # fmt: skip
    wall = time.perf_counter() - t0
    cfg = getattr(model, "config", None)
    rec = AttackRecord(
        model=cfg.to_dict() if cfg is not None else None,
        dataset=ds.info.to_dict(),
        settings=settings,
        env=env_info(dev),
        wall_s=wall,
        **payload,
    )
    if write:
        write_record(attack_record_path(path, rec), rec)
    return rec


def attack_record_path(model_path: str | os.PathLike[str], rec: AttackRecord) -> Path:
    """Where `attack_run` writes the record of `model_path`."""
    path = Path(model_path)
    return record_path(path if path.is_dir() else path.parent, "attack", rec.settings)

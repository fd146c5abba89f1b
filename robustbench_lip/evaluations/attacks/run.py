"""`attack_run`: attack a saved model (run folder or model file) and return its attack record.

The evaluation protocol of `base`: a `Context` reads config.json once; the data (`data`, else the
model's own dataset) and the model (never executing code) are loaded through it, `evaluate_attacks`
(evaluations.attacks.metrics) computes, an `AttackRecord` is assembled with the settings
`AttackSettings.record` derives and written to `<folder>/results/attack-<key>.json`, where <folder>
is the run folder, or the folder holding a model file (whose name is then part of the settings),
and `key` the settings key (records.store). `pending_attacks` is the "already recorded" rule for a
runs folder (base.pending), each run attacked with the attacks that apply to it.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from robustbench_lip.attacks.registry import mask_only_names
from robustbench_lip.errors import RlipError
from robustbench_lip.evaluations.attacks.metrics import Progress, evaluate_attacks
from robustbench_lip.evaluations.attacks.settings import AttackSettings
from robustbench_lip.evaluations.base import Context, evaluate, pending, split_options
from robustbench_lip.evaluations.data_check import check_data
from robustbench_lip.evaluations.inputs import dataset_name
from robustbench_lip.records import AttackRecord, env_info, record_path
from robustbench_lip.tasks import Task

NEED_DATA = "pass --data NAME to say which dataset to attack on"


def _dataset_name_or_fail(ctx: Context, data: str | None) -> str:
    meta = ctx.read_meta(need=None if data is not None else NEED_DATA)
    name = dataset_name(data, meta)
    if name is None:
        raise RlipError("the model does not say which dataset it was trained on; pass --data NAME")
    return name


def _context(path: str | os.PathLike[str] | Context) -> Context:
    return path if isinstance(path, Context) else Context(Path(path))


def attacks_for_run(
    run_dir: str | os.PathLike[str] | Context, attacks: tuple[str, ...] | list[str]
) -> tuple[list[str], list[str]]:
    """(attacks to run, attacks dropped) for one run of a batch: the mask-only attacks (SegPGD,
    CosPGD, SEA: attacks.registry.mask_only_names) are dropped for a classifier whose config says it
    predicts no masks (a dense head), so `--attack all,sea` over a runs folder attacks each run with
    what applies to it."""
    mask_only = mask_only_names()
    cfg = (_context(run_dir).read_meta() or {}).get("model") or {}
    if cfg.get("task") != Task.CLASSIFICATION.value or cfg.get("num_mask_classes") is not None:
        return list(attacks), []
    keep = [a for a in attacks if a not in mask_only]
    return keep, [a for a in attacks if a in mask_only]


def planned_settings(
    run_dir: str | os.PathLike[str] | Context, settings: AttackSettings | None = None, **options: Any
) -> dict[str, Any]:
    """The settings `attack_run` records for a run folder, from its config.json alone
    (options: fields of `AttackSettings` in place of `settings`)."""
    if settings is None:
        (settings,) = split_options(options, AttackSettings)
    return settings.record(_dataset_name_or_fail(_context(run_dir), settings.data))


Note = Callable[[Path, list[str]], None]


def pending_attacks(
    runs_dir: str | os.PathLike[str],
    settings: AttackSettings,
    dropped: Note | None = None,
    errors: list[tuple[Path, RlipError]] | None = None,
) -> list[tuple[Context, AttackSettings]]:
    """(run, its settings) of the finished runs under `runs_dir` without an attack record for these
    settings, each with the attacks that apply to it (`attacks_for_run`; `dropped(run, names)` is
    told the attacks left out; a run left with none is skipped). A run whose settings cannot be
    planned goes to `errors` (raised when None)."""

    def plan(ctx: Context) -> list[tuple[AttackSettings, dict[str, Any]]]:
        try:
            keep, left = attacks_for_run(ctx, settings.attack or ())
            if left and dropped is not None:
                dropped(ctx.path, left)
            if not keep and settings.attack:
                return []
            own = dataclasses.replace(settings, attack=tuple(keep))
            return [(own, planned_settings(ctx, own))]
        except RlipError as e:
            if errors is None:
                raise
            errors.append((ctx.path, e))
            return []

    return pending(runs_dir, "attack", plan)


def attack_run(
    model_path: str | os.PathLike[str] | Context,
    settings: AttackSettings | None = None,
    *,
    progress: Progress | None = None,
    write: bool = True,
    arch: str | None = None,
    **options: Any,
) -> AttackRecord:
    """Attack the model at `model_path` (run folder, model file, or its Context) and return the record.

    settings: `AttackSettings`; or, in its place, its fields as keywords (eps: budgets in [0, 1]
    pixel units (ℓ∞) or ≥ 0 (ℓ2); attack: names or "all"; preset: an attack protocol (`standard`)
    replacing them, steps None: the protocol's own; restarts: of `sea`; other_data: allow data other
    than the run's own (evaluations.data_check); the rest as `evaluate_attacks`). arch: of a bare
    state_dict (as `certify_run`), built at the data's size. n larger than the dataset is clamped
    (logged); the settings keep the n asked for. With `write`, the record goes to the folder's
    `results/` (see the module docstring)."""
    if settings is None:
        (settings,) = split_options(options, AttackSettings)
    elif options:
        raise TypeError(f"options {sorted(options)} given with settings")
    s = settings
    return evaluate(model_path, lambda ctx: _attack(ctx, s, progress, arch), write, beside_file=True)


def _attack(ctx: Context, s: AttackSettings, progress: Progress | None, arch: str | None) -> AttackRecord:
    """Load (data, model) through `ctx`, attack, and build the record (not written)."""
    from robustbench_lip.device import resolve_device

    name = _dataset_name_or_fail(ctx, s.data)
    dev = resolve_device(s.device)
    ds = ctx.test_set(name, s.root)
    record_settings = s.record(ds.info.name, None if ctx.path.is_dir() else ctx.path.name)
    size = tuple(ds[0][0].shape) if arch else None
    model = ctx.load_model(str(dev), arch, size)
    check_data(getattr(model, "config", None), ds.info, s.root, ctx.read_meta(), s.other_data)
    t0 = time.perf_counter()
    payload = evaluate_attacks(
        model, ds, s.eps, s.attack or (), norm=s.norm, steps=s.steps, alpha=s.alpha, n=s.n,
        batch_size=s.batch_size, seed=s.seed, objective=s.objective, device=dev, progress=progress,
        preset=s.preset, restarts=s.restarts,
    )  # fmt: skip
    wall = time.perf_counter() - t0
    cfg = getattr(model, "config", None)
    return AttackRecord(
        model=cfg.to_dict() if cfg is not None else None,
        dataset=ds.info.to_dict(),
        settings=record_settings,
        env=env_info(dev),
        wall_s=wall,
        **payload,
    )


def attack_record_path(model_path: str | os.PathLike[str] | Context, rec: AttackRecord) -> Path:
    """Where `attack_run` writes the record of `model_path`."""
    path = _context(model_path).path
    return record_path(path if path.is_dir() else path.parent, "attack", rec.settings)


__all__ = [
    "attack_record_path",
    "attack_run",
    "attacks_for_run",
    "pending_attacks",
    "planned_settings",
]

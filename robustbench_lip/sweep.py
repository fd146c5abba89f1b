"""λ sweeps: a SweepSpec (zoo/*.toml) → one run directory per (model, λ, seed), trained by an executor.

Executors: "local" trains the runs one after another in this process; "submitit-local" runs each
as a subprocess through submitit's LocalExecutor (what the tests exercise; `parallel` jobs at a
time); "slurm" submits a job array through submitit's AutoExecutor and returns without waiting
(follow with `rlip zoo list`). Finished runs are skipped, unfinished ones resumed from their last
checkpoint (training.train does both). Run names are stable: `<spec>-<model>-lam<λ>-s<seed>`.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from robustbench_lip.choices import Executor, values
from robustbench_lip.config import SweepSpec, TrainConfig
from robustbench_lip.config.sweep import SlurmOptions
from robustbench_lip.errors import RlipError
from robustbench_lip.runs import is_finished, read_train_record, run_dirs

log = logging.getLogger(__name__)

EXECUTORS: tuple[str, ...] = values(Executor)
SUBMITIT_DIR = ".submitit"


@dataclass
class PlannedRun:
    """One (model, λ, seed) of a sweep."""

    name: str
    config: TrainConfig
    run_dir: Path


@dataclass
class SweepResult:
    """rows: one summary dict per run (see `run_row`); job_ids: submitted slurm jobs (slurm only)."""

    rows: list[dict[str, Any]]
    runs_dir: Path
    wall_s: float
    job_ids: list[str] = field(default_factory=list)


def run_name(spec: SweepSpec, model: str, lam: float, seed: int) -> str:
    """The stable run folder name of (model, λ, seed) in `spec`."""
    return spec.run_name(model, lam, seed)


def plan(spec: SweepSpec, runs_dir: str | Path) -> list[PlannedRun]:
    """The sweep's runs, in spec order (models × λ × seeds)."""
    root = Path(runs_dir)
    out = []
    for name, cfg in spec.runs():
        out.append(PlannedRun(name=name, config=cfg, run_dir=root / name))
    return out


def validate(spec: SweepSpec, planned: list[PlannedRun]) -> None:
    """Check names, targets and run folders before anything runs (RlipError, nothing written)."""
    from robustbench_lip.data import dataset_info, list_datasets
    from robustbench_lip.models import create_model, list_models
    from robustbench_lip.training import prepare_run_dir

    if spec.data not in list_datasets():
        raise RlipError(f"unknown dataset {spec.data!r} in the spec; available: {', '.join(list_datasets())}")
    dataset_info(spec.data, root=spec.root, **spec.data_options)  # checks the [data] options
    targets = {p.config.model: p.config.penalty.target for p in planned}
    for m in spec.models:
        if m not in list_models():
            raise RlipError(f"unknown model {m!r} in the spec; available: {', '.join(list_models())}")
        if targets.get(m) == "reflection" and not create_model(m).config.reflection_defined:
            raise RlipError(
                f"train.reg_target = 'reflection' but {m} changes the shape of its input; use 'A'"
            )
    for p in planned:
        prepare_run_dir(p.run_dir, p.config)


def run_job(config: dict[str, Any], run_dir: str) -> dict[str, Any]:
    """Train one run (module-level so that submitit can pickle it); returns a plain summary dict."""
    from robustbench_lip.training import train

    cfg = TrainConfig.from_dict(config)
    t0 = time.perf_counter()
    try:
        res = train(cfg, run_dir)
    except RlipError as e:
        return {"status": "failed", "error": str(e), "wall_s": time.perf_counter() - t0, "skipped": False}
    return {"status": res.status, "error": None, "wall_s": res.wall_s, "skipped": res.skipped}


def run_row(run_dir: Path, name: str | None = None, job: dict[str, Any] | None = None) -> dict[str, Any]:
    """Summary of one run folder: name, model, data, λ, seed, status, epochs done/total, final metrics."""
    rec = read_train_record(run_dir) or {}
    settings = rec.get("settings") or {}
    final = rec.get("final") or {}
    history = rec.get("history") or []
    status = "finished" if is_finished(run_dir) else rec.get("status") or "pending"
    if status == "running" and job is not None and job.get("status") == "failed":
        status = "failed"
    row = {
        "name": name or run_dir.name,
        "model": settings.get("model"),
        "data": settings.get("data"),
        "lam": settings.get("lam"),
        "reg_target": settings.get("reg_target"),
        "seed": settings.get("seed"),
        "status": status,
        "epochs_done": len(history),
        "epochs": settings.get("epochs"),
        **{k: final.get(k) for k in ("accuracy", "precision", "miou", "sigma_A_max", "sigma_R_max")},
        "collapsed": bool(final.get("collapsed")),  # False for records older than the flag
        "wall_s": rec.get("wall_s"),
        "skipped": bool(job.get("skipped")) if job else False,
        "error": (job or {}).get("error") or rec.get("error"),
        "run_dir": str(run_dir),
    }
    return row


def list_runs(runs_dir: str | Path) -> list[dict[str, Any]]:
    """Summary rows of every run folder under `runs_dir` (sorted by name)."""
    return [run_row(p) for p in run_dirs(runs_dir)]


def run_sweep(
    spec: SweepSpec,
    runs_dir: str | Path,
    executor: str | Executor = "local",
    *,
    slurm: SlurmOptions | None = None,
    parallel: int = 1,
    progress_factory: Callable[[PlannedRun], Callable[[dict[str, Any]], None] | None] | None = None,
) -> SweepResult:
    """Train every run of `spec` under `runs_dir` with `executor`; finished runs are skipped.

    progress_factory (local executor only) gives a progress callback per run. A run that fails
    (divergence, ...) is reported in its row; the others go on.
    """
    if executor not in EXECUTORS:
        raise RlipError(f"unknown executor {executor!r}; expected one of {', '.join(EXECUTORS)}")
    executor = Executor(executor).value
    if parallel < 1:
        raise RlipError(f"parallel must be ≥ 1, got {parallel}")
    root = Path(runs_dir)
    planned = plan(spec, root)
    validate(spec, planned)
    t0 = time.perf_counter()
    jobs: dict[str, dict[str, Any]] = {}
    todo = [p for p in planned if not is_finished(p.run_dir)]
    for p in planned:
        if is_finished(p.run_dir):
            jobs[p.name] = {"status": "finished", "skipped": True, "error": None}
            log.info("%s: finished, skipped", p.name)
    job_ids: list[str] = []
    if executor == Executor.local:
        jobs.update(_local(todo, progress_factory))
    elif todo:
        jobs.update(_submitit(todo, root, executor, slurm or SlurmOptions(), parallel, job_ids))
    rows = [run_row(p.run_dir, p.name, jobs.get(p.name)) for p in planned]
    return SweepResult(rows=rows, runs_dir=root, wall_s=time.perf_counter() - t0, job_ids=job_ids)


def _local(
    todo: list[PlannedRun],
    progress_factory: Callable[[PlannedRun], Callable[[dict[str, Any]], None] | None] | None,
) -> dict[str, dict[str, Any]]:
    """Train the runs one after another in this process; a failed run does not stop the others."""
    from robustbench_lip.training import train

    out: dict[str, dict[str, Any]] = {}
    for p in todo:
        cb = progress_factory(p) if progress_factory else None
        try:
            res = train(p.config, p.run_dir, progress=cb)
            out[p.name] = {"status": res.status, "skipped": res.skipped, "error": None}
        except RlipError as e:
            log.error("%s: %s", p.name, e)
            out[p.name] = {"status": "failed", "skipped": False, "error": str(e)}
    return out


def _submitit(
    todo: list[PlannedRun],
    root: Path,
    executor: str,
    slurm: SlurmOptions,
    parallel: int,
    job_ids: list[str],
) -> dict[str, dict[str, Any]]:
    import submitit

    folder = root / SUBMITIT_DIR / "%j"
    args = ([p.config.to_dict() for p in todo], [str(p.run_dir) for p in todo])
    if executor == "slurm":
        if shutil.which("sbatch") is None:
            raise RlipError("the slurm executor needs Slurm (sbatch not found); use --executor local")
        ex = submitit.AutoExecutor(folder=folder, cluster="slurm")
        params: dict[str, Any] = {
            "timeout_min": slurm.time_min,
            "gpus_per_node": slurm.gpus,
            "cpus_per_task": slurm.cpus,
            "name": "rlip-zoo",
        }
        if slurm.partition:
            params["slurm_partition"] = slurm.partition
        if slurm.parallel:
            params["slurm_array_parallelism"] = slurm.parallel
        ex.update_parameters(**params)
        submitted = ex.map_array(run_job, *args)
        job_ids.extend(str(j.job_id) for j in submitted)
        log.info("submitted %d slurm job(s): %s", len(submitted), ", ".join(job_ids))
        return {p.name: {"status": "submitted", "skipped": False, "error": None} for p in todo}
    out: dict[str, dict[str, Any]] = {}
    ex = submitit.LocalExecutor(folder=folder)
    ex.update_parameters(timeout_min=24 * 60)
    for i in range(0, len(todo), parallel):
        wave = todo[i : i + parallel]
        jobs = [ex.submit(run_job, p.config.to_dict(), str(p.run_dir)) for p in wave]
        for p, j in zip(wave, jobs, strict=True):
            job_ids.append(str(j.job_id))
            try:
                out[p.name] = j.result()
            except Exception as e:  # the job crashed (not an RlipError): keep its last line
                last = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
                log.error("%s: job failed: %s", p.name, last)
                out[p.name] = {"status": "failed", "skipped": False, "error": last}
    return out

"""`rlip zoo train SPEC.toml` (λ sweeps) and `rlip zoo list` (runs and their state)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from robustbench_lip.choices import Executor
from robustbench_lip.cli.common import console, handle_errors, sigterm_as_interrupt
from robustbench_lip.cli.train import ProgressView, make_progress
from robustbench_lip.config.sweep import SlurmOptions
from robustbench_lip.evaluations.base import with_settings

zoo_app = typer.Typer(help="Model zoo: λ sweeps from TOML specs.", no_args_is_help=True)


STATUS_STYLE = {
    "finished": "green",
    "running": "yellow",
    "failed": "red",
    "interrupted": "magenta",
    "submitted": "cyan",
    "pending": "dim",
    "collapsed": "red",
}


def _num(v: Any, fmt: str = ".3g") -> str:
    return "—" if v is None else format(v, fmt)


def runs_table(rows: list[dict[str, Any]], title: str) -> Table:
    """A rich table of run rows (sweep.run_row)."""
    t = Table(title=title)
    for col, just in (
        ("run", "left"),
        ("λ", "right"),
        ("seed", "right"),
        ("status", "left"),
        ("epochs", "right"),
        ("acc", "right"),
        ("prec", "right"),
        ("mIoU", "right"),
        ("σA max", "right"),
        ("σR max", "right"),
        ("time s", "right"),
    ):
        t.add_column(col, justify=just)  # type: ignore[arg-type]
    for r in rows:
        collapsed = bool(r.get("collapsed"))
        style = STATUS_STYLE.get("collapsed" if collapsed else r["status"], "")
        status = r["status"] + (", collapsed to chance" if collapsed else "")
        status += " (skipped)" if r.get("skipped") else ""
        t.add_row(
            r["name"],
            _num(r["lam"], "g"),
            _num(r["seed"], "d"),
            f"[{style}]{status}[/{style}]" if style else status,
            f"{r['epochs_done']}/{_num(r['epochs'], 'd')}",
            _num(r["accuracy"]),
            _num(r["precision"]),
            _num(r["miou"]),
            _num(r["sigma_A_max"]),
            _num(r["sigma_R_max"]),
            _num(r["wall_s"], ".0f"),
        )
    return t


def _print_table(table: Table) -> None:
    """Print a wide table (when stdout is not a terminal, the console is wide: nothing is cut)."""
    console.print(table)


@zoo_app.command("train")
@handle_errors
@with_settings
def zoo_train(
    spec: Annotated[Path, typer.Argument(help="Sweep spec (TOML), e.g. zoo/shapes_cpu.toml.")],
    runs_dir: Annotated[Path, typer.Option("--runs-dir", help="Where run folders go.")] = Path("zoo/runs"),
    executor: Annotated[Executor, typer.Option("--executor", help="How runs are executed.")] = Executor.local,
    parallel: Annotated[int, typer.Option("--parallel", help="submitit-local: jobs at a time.")] = 1,
    *,
    slurm: SlurmOptions,
) -> None:
    """Train every (model, λ, seed) of SPEC; finished runs are skipped, unfinished ones resumed."""
    from robustbench_lip.config import SweepSpec
    from robustbench_lip.sweep import run_sweep

    sweep = SweepSpec.from_toml(spec)
    if executor is Executor.local:
        with sigterm_as_interrupt(), make_progress() as progress:
            res = run_sweep(
                sweep,
                runs_dir,
                "local",
                progress_factory=lambda p: ProgressView(progress, p.name),
            )
    else:
        with console.status(f"running {sweep.name} through {executor.value} ..."):
            res = run_sweep(sweep, runs_dir, executor.value, slurm=slurm, parallel=parallel)
    _print_table(runs_table(res.rows, f"sweep {sweep.name} ({res.wall_s:.0f} s) in {runs_dir}"))
    if res.job_ids:
        console.print(f"submitted slurm jobs: {', '.join(res.job_ids)}; follow with `rlip zoo list`")
    failed = [r for r in res.rows if r["status"] == "failed"]
    for r in failed:
        console.print(f"[red]{r['name']} failed:[/red] {r['error']}", highlight=False)
    for r in res.rows:
        if r["status"] != "failed" and r.get("collapsed"):
            msg = "no better than a constant prediction (results/train.json: final.collapsed)"
            console.print(f"[red]{r['name']} collapsed:[/red] {msg}", highlight=False)
    if failed:
        raise typer.Exit(1)


@zoo_app.command("list")
@handle_errors
def zoo_list(
    runs_dir: Annotated[Path, typer.Option("--runs-dir", help="Folder of run folders.")] = Path("zoo/runs"),
) -> None:
    """Show the runs under --runs-dir and their state."""
    from robustbench_lip.sweep import list_runs

    rows = list_runs(runs_dir)
    if not rows:
        console.print(f"no runs in {runs_dir}")
        return
    _print_table(runs_table(rows, f"runs in {runs_dir}"))


def register(app: typer.Typer) -> None:
    """Add `rlip zoo` to the root app."""
    app.add_typer(zoo_app, name="zoo")

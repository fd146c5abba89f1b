"""`rlip attack`: clean vs attacked accuracy / precision / mIoU per ε, written as an `attack` record.

Thin: the options are made from `AttackSettings` (evaluations.base.with_settings), the evaluation is
evaluations.attacks.run (`attack_run`; over a runs folder `pending_attacks`, the one "already
recorded" rule), and this module renders."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from robustbench_lip.attacks.registry import attack_help
from robustbench_lip.cli.common import Arch, console, err_console, handle_errors, live_help
from robustbench_lip.cli.progress import step_progress
from robustbench_lip.errors import RlipError
from robustbench_lip.evaluations.attacks.settings import AttackSettings
from robustbench_lip.evaluations.base import Before, with_settings
from robustbench_lip.io import atomic_write_json


def _fmt(v: float | None) -> str:
    return "—" if v is None else f"{100 * v:.2f}"


def render(rec: dict[str, Any], title: str) -> Table:
    """Rich table: clean row, then one row per (ε, attack); metrics in %."""
    lv = rec.get("levels", {})
    table = Table(title=title, title_justify="left")
    for col, just in (("attack", "left"), ("norm", "left"), ("ε", "right"), ("steps", "right")):
        table.add_column(col, justify=just)  # type: ignore[arg-type]
    table.add_column(f"accuracy % ({lv.get('accuracy', '')})", justify="right")
    table.add_column(f"precision % ({lv.get('precision', '')})", justify="right")
    table.add_column("mIoU %", justify="right")
    c = rec["clean"]
    table.add_row(
        "clean", "", "", "", _fmt(c["accuracy"]), _fmt(c["precision"]), _fmt(c["miou"]), style="bold"
    )
    for r in rec["results"]:
        table.add_row(
            r["attack"],
            r["norm"],
            r["eps_text"],
            str(r["steps"]),
            _fmt(r["accuracy"]),
            _fmt(r["precision"]),
            _fmt(r["miou"]),
            style="red" if r["attack"] == "worst" else None,
        )
    return table


def attack_one(model: Any, settings: AttackSettings, arch: str | None = None) -> dict[str, Any]:
    """Attack one model (a path or a run's Context; evaluations.attacks.run.attack_run) with a
    progress bar; render; returns the record dict."""
    from robustbench_lip.evaluations.attacks.run import attack_record_path, attack_run

    path = Path(getattr(model, "path", model))
    with step_progress(f"attacking {path.name}") as update:
        rec = attack_run(model, settings, progress=lambda done, total: update("", done, total), arch=arch)
    data = rec.to_dict()
    ds_name = (rec.dataset or {}).get("name")
    proto = f", protocol {rec.protocol}" if rec.protocol else ""
    console.print(render(data, f"{path.name} — {ds_name} (n={rec.n}, objective {rec.objective}{proto})"))
    console.print(f"record: {attack_record_path(path, rec)}", highlight=False)
    return data


def _attack_runs(runs_dir: Path, settings: AttackSettings) -> tuple[list[dict[str, Any]], int] | None:
    """Attack every finished run under `runs_dir` without a record for these settings
    (evaluations.attacks.run.pending_attacks); (records, failures), None without finished runs."""
    from robustbench_lip.evaluations.attacks.run import pending_attacks
    from robustbench_lip.runs import finished_runs, require_runs_dir

    runs = finished_runs(require_runs_dir(runs_dir))
    if not runs:
        console.print(f"no finished runs under {runs_dir}", highlight=False)
        return None

    def dropped(run: Path, names: list[str]) -> None:
        note = f"note: {run.name}: no masks to attack; skipping {', '.join(names)}"
        err_console.print(note, highlight=False)

    def failed(run: Path, e: RlipError) -> None:
        err_console.print(f"[bold red]error:[/bold red] {run.name}: {e}", highlight=False, soft_wrap=True)

    errors: list[tuple[Path, RlipError]] = []
    todo = pending_attacks(runs_dir, settings, dropped, errors)
    for run, e in errors:
        failed(run, e)
    skipped = len(runs) - len(todo) - len(errors)  # recorded, or no attack applies
    records = []
    for ctx, own in todo:
        try:
            records.append(attack_one(ctx, own))
        except RlipError as e:
            errors.append((ctx.path, e))
            failed(ctx.path, e)
    summary = f"attacked {len(records)} run(s), skipped {skipped} with a record, {len(errors)} failed"
    console.print(summary, highlight=False)
    return records, len(errors)


@handle_errors
@with_settings
def attack_cmd(
    model: Annotated[
        str | None,
        typer.Argument(help="Model: run dir, .pt, .pt2, ... (anything load_model accepts). None: every run."),
    ] = None,
    *,
    settings: AttackSettings,
    json_out: Annotated[
        Path | None,
        typer.Option("--json", help="Also write the record(s) to this file."),
        Before("other_data"),
    ] = None,
    runs_dir: Annotated[
        Path, typer.Option("--runs-dir", help="Runs attacked when no MODEL is given."), Before("other_data")
    ] = Path("zoo/runs"),
    arch: Arch = None,
) -> None:
    """Attack a model (or every finished run without a record for these settings) and record the result."""
    if model is not None:
        rec = attack_one(model, settings, arch)
        if json_out is not None:
            atomic_write_json(json_out, rec)
        return
    if arch is not None:
        raise RlipError("--arch names the architecture of one MODEL file; pass the file")
    done = _attack_runs(runs_dir, settings)
    if done is None:
        return
    records, failed = done
    if json_out is not None:
        atomic_write_json(json_out, records)
    if failed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add `rlip attack` to the root app."""
    app.command("attack", cls=live_help("attack", attack_help))(attack_cmd)

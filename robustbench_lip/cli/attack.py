"""`rlip attack`: clean vs attacked accuracy / precision / mIoU per ε, written as an `attack` record."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from typer.core import TyperCommand

from robustbench_lip.attacks.eps import parse_eps_list, parse_eps_token
from robustbench_lip.attacks.registry import DEFAULT_STEPS, attack_help, protocol_default_steps, protocols
from robustbench_lip.choices import Norm, Objective
from robustbench_lip.cli.common import Arch, OtherData, console, err_console, handle_errors
from robustbench_lip.cli.progress import step_progress
from robustbench_lip.errors import RlipError
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


def attack_one(model_path: str, eps: list[float], attacks: list[str], **options: Any) -> dict[str, Any]:
    """Attack one model (evaluation.attack_run) with a progress bar; render; returns the record dict."""
    from robustbench_lip.evaluation.attack import attack_record_path, attack_run

    path = Path(model_path)
    with step_progress(f"attacking {path.name}") as update:
        rec = attack_run(
            path, eps, attacks, progress=lambda done, total: update("", done, total), **options
        )
    data = rec.to_dict()
    ds_name = (rec.dataset or {}).get("name")
    proto = f", protocol {rec.protocol}" if rec.protocol else ""
    console.print(render(data, f"{path.name} — {ds_name} (n={rec.n}, objective {rec.objective}{proto})"))
    console.print(f"record: {attack_record_path(path, rec)}", highlight=False)
    return data


@handle_errors
def attack_cmd(
    model: Annotated[
        str | None,
        typer.Argument(help="Model: run dir, .pt, .pt2, ... (anything load_model accepts). None: every run."),
    ] = None,
    eps: Annotated[
        str, typer.Option("--eps", help="Budgets, e.g. 0,2/255,8/255 (ℓ∞ in [0,1]; ℓ2 ≥ 0).")
    ] = ...,  # type: ignore[assignment]
    attack: Annotated[
        str | None,
        typer.Option("--attack", help=attack_help()),  # refreshed from the registry: AttackCommand
    ] = None,
    preset: Annotated[
        str | None,
        typer.Option(
            "--preset", help="Protocol instead of --attack: standard = AutoAttack (labels), SEA (masks)."
        ),
    ] = None,
    norm: Annotated[Norm, typer.Option("--norm", help="Threat model.")] = Norm.linf,
    steps: Annotated[
        int | None,
        typer.Option(
            "--steps",
            min=1,
            help=f"Iterations per attack (SEA: per member) [{DEFAULT_STEPS}; --preset: "
            f"{protocol_default_steps('standard')}].",
        ),
    ] = None,
    restarts: Annotated[int, typer.Option("--restarts", min=1, help="Restarts of sea (others: 1).")] = 1,
    alpha: Annotated[str | None, typer.Option("--alpha", help="Step size (default 2.5·ε/steps).")] = None,
    objective: Annotated[
        Objective | None,
        typer.Option(
            "--objective", help="cls: image-label loss; pixel: pixel loss on the mask (default by model)."
        ),
    ] = None,
    data: Annotated[str | None, typer.Option("--data", help="Dataset name (default: the model's).")] = None,
    root: Annotated[
        Path | None, typer.Option("--root", help="Dataset folder (cifar10, coco, folder).")
    ] = None,
    n: Annotated[int | None, typer.Option("--n", min=1, help="Attack the first N test samples.")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 64,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the random starts.")] = 0,
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda or cuda:N.")] = "auto",
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Also write the record(s) to this file.")
    ] = None,
    runs_dir: Annotated[
        Path, typer.Option("--runs-dir", help="Runs attacked when no MODEL is given.")
    ] = Path("zoo/runs"),
    other_data: OtherData = False,
    arch: Arch = None,
) -> None:
    """Attack a model (or every finished run without a record for these settings) and record the result."""
    eps_list = parse_eps_list(eps, norm.value)  # before the heavy imports: a bad --eps answers fast
    from robustbench_lip.evaluation.attack import attack_list, attacks_for_run, planned_settings
    from robustbench_lip.records import is_recorded
    from robustbench_lip.runs import finished_runs, require_runs_dir

    if preset is not None and attack is not None:
        raise RlipError("--preset and --attack exclude each other: a preset names its own attacks")
    if preset is not None and preset.lower() not in protocols():
        raise RlipError(f"unknown --preset {preset!r}; expected one of {', '.join(protocols())}")
    attacks = [] if preset is not None else attack_list(attack or "pgd")
    steps = steps if steps is not None or preset is not None else DEFAULT_STEPS
    alpha_v = parse_eps_token(alpha, "l2") if alpha is not None else None
    if alpha_v is not None and alpha_v <= 0:
        raise RlipError(f"bad --alpha {alpha!r}: must be > 0")
    options: dict[str, Any] = dict(
        norm=norm.value, steps=steps, alpha=alpha_v, objective=objective.value if objective else None,
        data=data, n=n, batch_size=batch_size, seed=seed, preset=preset.lower() if preset else None,
        restarts=restarts, other_data=other_data,
    )  # fmt: skip
    if model is not None:
        rec = attack_one(model, eps_list, attacks, root=root, device=device, arch=arch, **options)
        if json_out is not None:
            atomic_write_json(json_out, rec)
        return
    if arch is not None:
        raise RlipError("--arch names the architecture of one MODEL file; pass the file")
    runs = finished_runs(require_runs_dir(runs_dir))
    if not runs:
        console.print(f"no finished runs under {runs_dir}", highlight=False)
        return
    records, failed, skipped = [], 0, 0
    for run in runs:
        try:
            run_attacks, dropped = attacks_for_run(run, attacks)
            if dropped:
                err_console.print(
                    f"note: {run.name}: no masks to attack; skipping {', '.join(dropped)}", highlight=False
                )
            if not run_attacks and attacks:
                skipped += 1
                continue
            if is_recorded(run, "attack", planned_settings(run, eps_list, run_attacks, **options)):
                skipped += 1
                continue
            records.append(attack_one(str(run), eps_list, run_attacks, root=root, device=device, **options))
        except RlipError as e:
            failed += 1
            err_console.print(f"[bold red]error:[/bold red] {run.name}: {e}", highlight=False, soft_wrap=True)
    console.print(
        f"attacked {len(records)} run(s), skipped {skipped} with a record, {failed} failed", highlight=False
    )
    if json_out is not None:
        atomic_write_json(json_out, records)
    if failed:
        raise typer.Exit(1)


class AttackCommand(TyperCommand):
    """`rlip attack`, whose --attack help lists the attacks registered when the help is shown
    (also those registered after this module was imported)."""

    def get_params(self, ctx: Any) -> list[Any]:
        params = super().get_params(ctx)
        for p in params:
            if p.name == "attack":
                p.help = attack_help()
        return params


def register(app: typer.Typer) -> None:
    """Add `rlip attack` to the root app."""
    app.command("attack", cls=AttackCommand)(attack_cmd)

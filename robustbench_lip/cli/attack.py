"""`rlip attack`: clean vs attacked accuracy / precision / mIoU per ε, written as an `attack` record."""

from __future__ import annotations

import time
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from robustbench_lip.attacks.eps import format_eps, parse_eps_list, parse_eps_token
from robustbench_lip.attacks.evaluate import ATTACK_NAMES, evaluate
from robustbench_lip.cli.common import console, err_console, handle_errors
from robustbench_lip.device import resolve_device
from robustbench_lip.errors import RlipError
from robustbench_lip.io import atomic_write_json
from robustbench_lip.records import make_record, record_path, write_record
from robustbench_lip.runs import finished_runs, has_record


class Norm(str, Enum):
    linf = "linf"
    l2 = "l2"


class Objective(str, Enum):
    cls = "cls"
    pixel = "pixel"


def _attack_list(text: str) -> list[str]:
    names = [t.strip().lower() for t in text.split(",")]
    for t in names:
        if t not in (*ATTACK_NAMES, "all"):
            raise RlipError(f"unknown attack {t!r}; expected one of {', '.join((*ATTACK_NAMES, 'all'))}")
    return names


def _dataset_meta(model_path: str, data: str | None) -> dict[str, Any] | None:
    """The DatasetInfo dict the model was saved with (None when it has none and --data is given)."""
    from robustbench_lip.modelio import read_model_meta

    try:
        meta = read_model_meta(model_path)
    except RlipError as e:
        if data is None:
            raise RlipError(f"{e}; pass --data NAME to say which dataset to attack on") from None
        return None
    ds = meta.get("dataset") if isinstance(meta, dict) else None
    return ds if isinstance(ds, dict) else None


def _load_dataset(data: str | None, root: Path | None, meta_ds: dict[str, Any] | None) -> Any:
    from robustbench_lip.data import get_dataset

    name = data or (meta_ds or {}).get("name")
    if not name:
        raise RlipError("the model does not say which dataset it was trained on; pass --data NAME")
    options = dict((meta_ds or {}).get("options") or {}) if meta_ds and meta_ds.get("name") == name else {}
    return get_dataset(name, split="test", root=str(root) if root else None, **options)


def _settings(
    eps: list[float],
    attacks: list[str],
    norm: str,
    steps: int,
    alpha: float | None,
    objective: str | None,
    data: str,
    n: int | None,
    seed: int,
    batch_size: int,
    model_file: str | None,
) -> dict[str, Any]:
    s: dict[str, Any] = {
        "eps": [format_eps(e) for e in eps],
        "attack": attacks,
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
    return s


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


def attack_one(
    model_path: str,
    eps_text: str,
    attack: str,
    norm: str,
    steps: int,
    alpha: float | None,
    objective: str | None,
    data: str | None,
    root: Path | None,
    n: int | None,
    batch_size: int,
    seed: int,
    device: str,
) -> tuple[dict[str, Any], Path]:
    """Load, attack, write the record; returns (record, its path)."""
    from robustbench_lip.modelio import load_model

    eps = parse_eps_list(eps_text, norm)
    attacks = _attack_list(attack)
    path = Path(model_path)
    meta_ds = _dataset_meta(model_path, data)
    dev = resolve_device(device)
    ds = _load_dataset(data, root, meta_ds)
    settings = _settings(
        eps, attacks, norm, steps, alpha, objective, ds.info.name, n, seed, batch_size,
        None if path.is_dir() else path.name,
    )  # fmt: skip
    if n is not None and n > len(ds):
        err_console.print(
            f"notice: --n {n} is larger than the dataset ({len(ds)} samples); using {len(ds)}",
            highlight=False,
        )
        n = len(ds)
    model = load_model(model_path, device=str(dev))
    t0 = time.perf_counter()
    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    ) as bar:
        task = bar.add_task(f"attacking {path.name}", total=None)
        payload = evaluate(
            model, ds, eps, attacks, norm, steps, alpha, n, batch_size, seed, objective, dev,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )  # fmt: skip
    wall = time.perf_counter() - t0
    cfg = getattr(model, "config", None)
    rec = make_record(
        "attack",
        model=cfg.to_dict() if cfg is not None else None,
        dataset=ds.info.to_dict(),
        settings=settings,
        payload=payload,
        wall_s=wall,
        device=dev,
    )
    run_dir = path if path.is_dir() else path.parent
    out = write_record(record_path(run_dir, "attack", settings), rec)
    console.print(
        render(rec, f"{path.name} — {ds.info.name} (n={payload['n']}, objective {payload['objective']})")
    )
    console.print(f"record: {out}", highlight=False)
    return rec, out


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
        str, typer.Option("--attack", help="fgsm|pgd|segpgd|cospgd|apgd|autoattack|all, or a comma list.")
    ] = "pgd",
    norm: Annotated[Norm, typer.Option("--norm", help="Threat model.")] = Norm.linf,
    steps: Annotated[int, typer.Option("--steps", min=1, help="Iterations of the PGD-type attacks.")] = 10,
    alpha: Annotated[str | None, typer.Option("--alpha", help="Step size (default 2.5·ε/steps).")] = None,
    objective: Annotated[
        Objective | None,
        typer.Option(
            "--objective", help="cls: image-label loss; pixel: pixel loss on the mask (default by model)."
        ),
    ] = None,
    data: Annotated[str | None, typer.Option("--data", help="Dataset name (default: the model's).")] = None,
    root: Annotated[Path | None, typer.Option("--root", help="Dataset folder (cifar10, coco).")] = None,
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
) -> None:
    """Attack a model (or every finished run without a record for these settings) and record the result."""
    norm_s = norm.value
    eps_list = parse_eps_list(eps, norm_s)
    attacks = _attack_list(attack)
    alpha_v = parse_eps_token(alpha, "l2") if alpha is not None else None
    if alpha_v is not None and alpha_v <= 0:
        raise RlipError(f"bad --alpha {alpha!r}: must be > 0")
    obj = objective.value if objective is not None else None
    common = dict(
        eps_text=eps, attack=attack, norm=norm_s, steps=steps, alpha=alpha_v, objective=obj, data=data,
        root=root, n=n, batch_size=batch_size, seed=seed, device=device,
    )  # fmt: skip
    if model is not None:
        rec, _ = attack_one(model, **common)
        if json_out is not None:
            atomic_write_json(json_out, rec)
        return
    runs = finished_runs(runs_dir)
    if not runs:
        console.print(f"no finished runs under {runs_dir}", highlight=False)
        return
    records, failed, skipped = [], 0, 0
    for run in runs:
        try:
            meta_ds = _dataset_meta(str(run), data)
            name = data or (meta_ds or {}).get("name")
            if not name:
                raise RlipError("the run does not say which dataset it was trained on; pass --data NAME")
            settings = _settings(
                eps_list, attacks, norm_s, steps, alpha_v, obj, name, n, seed, batch_size, None
            )
            if has_record(run, "attack", settings):
                skipped += 1
                continue
            rec, _ = attack_one(str(run), **common)
            records.append(rec)
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


def register(app: typer.Typer) -> None:
    """Add `rlip attack` to the root app."""
    app.command("attack")(attack_cmd)

"""`rlip certify`: certified upper / measured lower Lipschitz bounds, FNE test, certified robustness.

Thin: the options are made from `Inputs`, `CertifySettings` and `SmoothingSettings`
(evaluations.base.with_settings), the evaluation is evaluations.lipschitz.run (or, with
`--smoothing`, evaluations.smoothing.run through cli.certify_smoothing), and this module renders."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from robustbench_lip.cli.common import Arch, console, err_console, handle_errors
from robustbench_lip.errors import RlipError
from robustbench_lip.evaluations.base import Inputs, parse_shape, with_settings
from robustbench_lip.evaluations.lipschitz.settings import CertifySettings
from robustbench_lip.evaluations.smoothing.settings import SmoothingSettings


def _fmt(v: Any, digits: int = 4) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.{digits}g}"
    return str(v)


def _bounds_table(name: str, lip: dict[str, Any]) -> Table:
    t = Table(
        title=f"certify {name}", caption="upper: certified; lower: witnessed (a quotient of two evaluations)"
    )
    for col in ("map", "upper", "lower", "gap = upper/lower", "lower mean", "converged"):
        t.add_column(col, justify="left" if col == "map" else "right")
    for key in ("A", "R"):
        d = lip.get(key)
        if d is None:
            continue
        t.add_row(
            key if key == "A" else "R = 2A − I",
            _fmt(d["upper"]),
            _fmt(d["lower"]),
            _fmt(d["gap"]),
            _fmt(d["lower_mean"]),
            str(d["converged"]),
        )
    return t


def _layers_table(rows: list[dict[str, Any]]) -> Table:
    lt = Table(title="per-layer bounds (factor: this node's bound; cumulative: input ↦ node)")
    for col in ("node", "op", "factor", "cumulative", "method", "shape"):
        lt.add_column(col)
    for row in rows:
        lt.add_row(
            row["name"],
            row["op"],
            _fmt(row["factor"]),
            _fmt(row["cumulative"]),
            row["method"],
            "×".join(str(s) for s in (row["out_shape"] or [])[1:]),
        )
    return lt


def _render(name: str, payload: dict[str, Any], wall_s: float, layers: bool) -> None:
    console.print(_bounds_table(name, payload["lipschitz"]))
    fne = payload["fne"]
    console.print(
        f"firm non-expansiveness: [bold]{fne['verdict']}[/bold]"
        + (
            f" (min ⟨Ax−Ay, x−y⟩ − ‖Ax−Ay‖² = {fne['min_value']:.4g}, pair {fne['witness']['indices']})"
            if fne.get("witness")
            else ""
        ),
        highlight=False,
    )
    for key, label in (
        ("certified_accuracy", "certified accuracy"),
        ("certified_accuracy_estimate", "optimistic estimate (lower bound)"),
        ("certified_miou", "certified mIoU"),
        ("certified_miou_estimate", "mIoU, optimistic estimate (lower bound)"),
        ("certified_pixel_accuracy", "certified pixel accuracy"),
    ):
        d = payload.get(key)
        if d:
            console.print(
                f"{label}: " + ", ".join(f"ε={k}: {_fmt(v)}" for k, v in d.items()), highlight=False
            )
    tm = payload["timings"]
    console.print(
        f"timings: export + upper {tm.get('export_upper_s') or 0:.2f} s, lower {tm.get('lower_s') or 0:.2f} s"
        f" (budget {_fmt(tm.get('lower_budget_s'))} s), radii {tm.get('radii_s') or 0:.2f} s,"
        f" total {wall_s:.2f} s",
        highlight=False,
    )
    for note in payload.get("notes", []):
        console.print(f"note: {note}", highlight=False)
    if layers and payload.get("layers"):
        console.print(_layers_table(payload["layers"]))


def _certify_and_render(model: Any, json_path: Path | None, layers: bool, **options: Any) -> None:
    """Certify one model (a path or a run's Context; evaluations.lipschitz.run.certify_run), warn
    about a missing bound, render, say where the record went."""
    from robustbench_lip.cli.progress import step_progress
    from robustbench_lip.evaluations.lipschitz.run import certify_run
    from robustbench_lip.records import record_path, write_record

    path = Path(getattr(model, "path", model))
    with step_progress(f"certifying {path.name}") as progress:
        rec = certify_run(model, layers=layers, progress=progress, **options)
    payload = rec.to_dict()
    if payload["lipschitz"]["A"]["upper"] is None:
        reasons = [f"{p['op']} ({p['node']}): {p['reason']}" for p in rec.bound_problems or []]
        err_console.print(
            "[yellow]warning:[/yellow] no certified upper bound (upper = null): " + "; ".join(reasons),
            highlight=False,
        )
    _render(path.name, payload, rec.wall_s, layers)
    if path.is_dir():
        console.print(f"record: {record_path(path, 'certify', rec.settings)}", highlight=False)
    if json_path is not None:
        write_record(json_path, rec)
        console.print(f"json: {json_path}", highlight=False)


def _print_rules() -> None:
    """`--list-rules`: the ATen ops that have a bound rule, by family."""
    from robustbench_lip.lipschitz.bounds import registered_ops

    for family in ("linear", "activations", "spatial", "structural", "nonlipschitz", "user"):
        ops = registered_ops(family)
        if ops:
            label = "non-Lipschitz (bound null, with the reason)" if family == "nonlipschitz" else family
            console.print(f"[bold]{label}[/bold] ({len(ops)}): " + ", ".join(ops), highlight=False)


def _smooth(model: Path | None, runs_dir: Path, sigmas: str, json_file: Path | None, **kw: Any) -> None:
    """`--smoothing`: refuse the Lipschitz-only options, then certify_smoothing.smooth_cmd."""
    from robustbench_lip.cli.certify_smoothing import smooth_cmd

    if model is None:
        from robustbench_lip.runs import require_runs_dir

        require_runs_dir(runs_dir)
    if kw.pop("layers"):
        raise RlipError("--layers is a Lipschitz-certificate option; drop it with --smoothing")
    if kw.pop("arch") is not None:
        raise RlipError(
            "--arch does not combine with --smoothing; export the weights first: "
            "rlip models export FILE --arch NAME --input-shape C,H,W --out model.pt2"
        )
    smooth_cmd(model, runs_dir, sigmas, json_file, **kw)


@handle_errors
@with_settings
def certify_cmd(
    model: Annotated[
        Path | None,
        typer.Argument(
            help="Model dir, .pt/.pth or .pt2 file; omitted: every finished run under --runs-dir."
        ),
    ] = None,
    runs_dir: Annotated[Path, typer.Option("--runs-dir", help="Runs folder (used without MODEL).")] = Path(
        "zoo/runs"
    ),
    arch: Arch = None,
    layers: Annotated[bool, typer.Option("--layers", help="Show and record the per-layer bounds.")] = False,
    json_file: Annotated[Path | None, typer.Option("--json", help="Also write the record here.")] = None,
    list_rules: Annotated[
        bool,
        typer.Option("--list-rules", help="Print the ATen ops that have a bound rule, by family, and exit."),
    ] = False,
    smoothing: Annotated[
        str | None,
        typer.Option(
            "--smoothing",
            help="Randomized smoothing at these noise levels σ (e.g. 0.25,0.5), instead of the Lipschitz "
            "certificate: probabilistic certificates of the smoothed model, one record per σ.",
        ),
    ] = None,
    *,
    inputs: Inputs,
    lipschitz: CertifySettings,
    smoothed: SmoothingSettings,
) -> None:
    """Certified Lipschitz upper bound, measured lower bounds, FNE test and certified robustness."""
    if list_rules:
        _print_rules()
        return
    if smoothing is not None:
        _smooth(
            model, runs_dir, smoothing, json_file, layers=layers, arch=arch, settings=smoothed, inputs=inputs
        )
        return
    options: dict[str, Any] = {"settings": lipschitz, "inputs": inputs}
    if model is not None:
        _certify_and_render(model, json_file, layers, arch=arch, **options)
        return
    if arch is not None:
        raise RlipError("--arch names the architecture of one MODEL file; pass the file")
    from robustbench_lip.runs import require_runs_dir

    require_runs_dir(runs_dir)
    from robustbench_lip.evaluations.lipschitz.run import pending_certify

    if json_file is not None:
        raise RlipError("--json needs a single MODEL")
    runs = pending_certify(runs_dir, lipschitz, inputs)
    if not runs:
        console.print(
            f"nothing to certify: no finished run without a certificate for these settings under {runs_dir}"
        )
        return
    for ctx in runs:
        console.print(f"[bold]{ctx.path.name}[/bold]")
        _certify_and_render(ctx, None, layers, **options)


def register(app: typer.Typer) -> None:
    """Add `rlip certify` to the root app."""
    app.command("certify")(certify_cmd)


__all__ = ["certify_cmd", "parse_shape", "register"]

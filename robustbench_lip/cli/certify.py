"""`rlip certify`: certified upper / measured lower Lipschitz bounds, FNE test, certified robustness."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from robustbench_lip.choices import BoundMode, CertifyTarget
from robustbench_lip.cli.common import Arch, OtherData, console, err_console, handle_errors
from robustbench_lip.errors import RlipError
from robustbench_lip.evaluations.lipschitz.settings import DEFAULT_LOWER_BUDGET_S


def parse_shape(text: str) -> tuple[int, int, int]:
    """'C,H,W' → (C, H, W) of positive ints."""
    parts = [p.strip() for p in text.replace("x", ",").replace("×", ",").split(",")]
    try:
        vals = tuple(int(p) for p in parts)
    except ValueError:
        raise RlipError(f"bad --input-shape {text!r}: expected C,H,W like 3,32,32") from None
    if len(vals) != 3 or any(v <= 0 for v in vals):
        raise RlipError(f"bad --input-shape {text!r}: expected three positive integers C,H,W like 3,32,32")
    return vals  # type: ignore[return-value]


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


def _certify_and_render(model_path: Path, json_path: Path | None, layers: bool, **options: Any) -> None:
    """Certify one model (evaluation.certify_run), warn about a missing bound, render, say where
    the record went."""
    from robustbench_lip.cli.progress import step_progress
    from robustbench_lip.evaluations.lipschitz.run import certify_run
    from robustbench_lip.records import record_path, write_record

    with step_progress(f"certifying {model_path.name}") as progress:
        rec = certify_run(model_path, layers=layers, progress=progress, **options)
    payload = rec.to_dict()
    if payload["lipschitz"]["A"]["upper"] is None:
        reasons = [f"{p['op']} ({p['node']}): {p['reason']}" for p in rec.bound_problems or []]
        err_console.print(
            "[yellow]warning:[/yellow] no certified upper bound (upper = null): " + "; ".join(reasons),
            highlight=False,
        )
    _render(model_path.name, payload, rec.wall_s, layers)
    if model_path.is_dir():
        console.print(f"record: {record_path(model_path, 'certify', rec.settings)}", highlight=False)
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


@handle_errors
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
    data: Annotated[
        str | None,
        typer.Option("--data", help="Dataset name, or 'none' for random inputs; default: the model's own."),
    ] = None,
    root: Annotated[Path | None, typer.Option("--root", help="Dataset root folder.")] = None,
    n: Annotated[int, typer.Option("--n", min=1, help="Number of test points.")] = 256,
    input_shape: Annotated[
        str | None,
        typer.Option("--input-shape", help="C,H,W: the input size of a foreign model (needed without data)."),
    ] = None,
    arch: Arch = None,
    target: Annotated[CertifyTarget, typer.Option("--target", help="A, reflection (R = 2A − I) or both.")] = (
        CertifyTarget.both
    ),
    eps: Annotated[str, typer.Option("--eps", help="ℓ2 radii, e.g. 36/255,72/255,108/255.")] = (
        "36/255,72/255,108/255"
    ),
    layers: Annotated[bool, typer.Option("--layers", help="Show and record the per-layer bounds.")] = False,
    json_file: Annotated[Path | None, typer.Option("--json", help="Also write the record here.")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the random points and searches.")] = 0,
    steps: Annotated[int, typer.Option("--steps", min=0, help="Adversarial search steps.")] = 10,
    mode: Annotated[BoundMode, typer.Option("--mode", help="Bound mode: fast, or tight (small grids).")] = (
        BoundMode.fast
    ),
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda, cuda:N.")] = "auto",
    lower_budget: Annotated[
        float,
        typer.Option(
            "--lower-budget",
            min=0.0,
            help="Seconds for the witnessed lower-bound search (A, R and the FNE test together); once "
            "spent it keeps the best witness so far. Recorded in the settings and timings.",
        ),
    ] = DEFAULT_LOWER_BUDGET_S,
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
    smoothing_n: Annotated[
        int, typer.Option("--smoothing-n", min=1, help="Monte Carlo samples per image (smoothing).")
    ] = 1000,
    smoothing_n0: Annotated[
        int, typer.Option("--smoothing-n0", min=1, help="Selection samples per image (smoothing).")
    ] = 100,
    smoothing_alpha: Annotated[
        float, typer.Option("--smoothing-alpha", help="Failure probability α of each smoothed certificate.")
    ] = 0.001,
    other_data: OtherData = False,
) -> None:
    """Certified Lipschitz upper bound, measured lower bounds, FNE test and certified robustness."""
    if list_rules:
        _print_rules()
        return
    if smoothing is not None:
        from robustbench_lip.cli.certify_smoothing import smooth_cmd

        if model is None:
            from robustbench_lip.runs import require_runs_dir

            require_runs_dir(runs_dir)
        if layers:
            raise RlipError("--layers is a Lipschitz-certificate option; drop it with --smoothing")
        if arch is not None:
            raise RlipError(
                "--arch does not combine with --smoothing; export the weights first: "
                "rlip models export FILE --arch NAME --input-shape C,H,W --out model.pt2"
            )
        smooth_cmd(
            model, runs_dir, smoothing, json_file, data=data, root=root, n=n, samples=smoothing_n,
            n0=smoothing_n0, alpha=smoothing_alpha, seed=seed, device=device, other_data=other_data,
            input_shape=parse_shape(input_shape) if input_shape is not None else None,
        )  # fmt: skip
        return
    from robustbench_lip.attacks.eps import parse_eps_list

    eps_list = parse_eps_list(eps, norm="l2")
    shape = parse_shape(input_shape) if input_shape is not None else None
    options: dict[str, Any] = dict(
        data=data, n=n, input_shape=shape, target=target.value, eps=eps_list, seed=seed, steps=steps,
        mode=mode.value, lower_budget=lower_budget, other_data=other_data,
    )  # fmt: skip
    if model is not None:
        _certify_and_render(model, json_file, layers, root=root, device=device, arch=arch, **options)
        return
    if arch is not None:
        raise RlipError("--arch names the architecture of one MODEL file; pass the file")
    from robustbench_lip.runs import require_runs_dir

    require_runs_dir(runs_dir)
    from robustbench_lip.evaluations.lipschitz.run import runs_to_certify

    if json_file is not None:
        raise RlipError("--json needs a single MODEL")
    runs = runs_to_certify(runs_dir, **options)
    if not runs:
        console.print(
            f"nothing to certify: no finished run without a certificate for these settings under {runs_dir}"
        )
        return
    for run in runs:
        console.print(f"[bold]{run.name}[/bold]")
        _certify_and_render(run, None, layers, root=root, device=device, **options)


def register(app: typer.Typer) -> None:
    """Add `rlip certify` to the root app."""
    app.command("certify")(certify_cmd)

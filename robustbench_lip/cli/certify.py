"""`rlip certify`: certified upper / measured lower Lipschitz bounds, FNE test, certified robustness."""

from __future__ import annotations

import logging
import time
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from robustbench_lip.cli.common import console, err_console, handle_errors
from robustbench_lip.errors import RlipError

log = logging.getLogger(__name__)


class TargetOpt(str, Enum):
    A = "A"
    reflection = "reflection"
    both = "both"


class ModeOpt(str, Enum):
    fast = "fast"
    tight = "tight"


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


def _render(name: str, payload: dict[str, Any], wall_s: float, layers: bool) -> None:
    lip = payload["lipschitz"]
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
    console.print(t)
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
        f"timings: upper {tm.get('upper_s', 0):.2f} s, lower {tm.get('lower_s', 0):.2f} s, "
        f"total {wall_s:.2f} s",
        highlight=False,
    )
    for note in payload.get("notes", []):
        console.print(f"note: {note}", highlight=False)
    if layers and payload.get("layers"):
        lt = Table(title="per-layer bounds (factor: this node's bound; cumulative: input ↦ node)")
        for col in ("node", "op", "factor", "cumulative", "method", "shape"):
            lt.add_column(col)
        for row in payload["layers"]:
            lt.add_row(
                row["name"],
                row["op"],
                _fmt(row["factor"]),
                _fmt(row["cumulative"]),
                row["method"],
                "×".join(str(s) for s in (row["out_shape"] or [])[1:]),
            )
        console.print(lt)


def certify_one(
    model_path: Path,
    data: str | None,
    root: Path | None,
    n: int,
    input_shape: tuple[int, int, int] | None,
    target: str,
    eps: list[float],
    layers: bool,
    json_path: Path | None,
    seed: int,
    steps: int,
    mode: str,
    device: str,
    write_run: bool = True,
) -> dict[str, Any]:
    """Certify one model file/dir; writes the record (into the model dir and/or json_path); returns it."""
    from robustbench_lip.certify import certify, settings_for
    from robustbench_lip.config import ModelConfig
    from robustbench_lip.device import resolve_device
    from robustbench_lip.modelio import load_model, read_model_meta
    from robustbench_lip.records import make_record, record_path, write_record

    t0 = time.perf_counter()
    if not model_path.exists():
        raise RlipError(f"no such model file or folder: {model_path}")
    dev = resolve_device(device)
    meta: dict[str, Any] | None
    try:
        meta = read_model_meta(model_path)
    except RlipError:
        meta = None  # foreign files (.pt2, bare weights) have no config.json
    model = load_model(model_path, device=dev, input_size=input_shape)
    cfg: ModelConfig = model.config
    ds_name = data
    ds_dict = None
    if ds_name is None:
        rec_ds = (meta or {}).get("dataset")
        if rec_ds:
            ds_name = rec_ds.get("name")
            ds_dict = rec_ds
    if ds_name is not None and ds_name.lower() == "none":
        ds_name = None
    images = labels = masks = None
    shape = tuple(input_shape) if input_shape is not None else tuple(cfg.input_size)
    num_mask = cfg.num_mask_classes
    if ds_name is not None:
        from robustbench_lip.data import get_dataset

        options = dict((ds_dict or {}).get("options") or {}) if data is None else {}
        try:
            ds = get_dataset(ds_name, split="test", root=root, **options)
        except TypeError:
            ds = get_dataset(ds_name, split="test", root=root)
        ds_dict = ds.info.to_dict()
        images, labels, masks = ds.take(n).tensors()
        if tuple(images.shape[1:]) != tuple(shape):
            if input_shape is not None:
                raise RlipError(
                    f"--input-shape {','.join(map(str, shape))} does not match the data's "
                    f"{','.join(map(str, images.shape[1:]))}"
                )
            shape = tuple(images.shape[1:])
        if num_mask is None and ds.info.num_mask_classes is not None and cfg.task != "classification":
            num_mask = ds.info.num_mask_classes
    elif input_shape is None and meta is None:
        if not cfg.arch.startswith("pt2"):
            raise RlipError(
                f"{model_path.name} is not a zoo model: without data it needs --input-shape C,H,W"
            )
        log.info("no data: using the exported program's input size %s", shape)
    cert = certify(
        model,
        images,
        labels,
        masks,
        input_shape=shape,
        target=target,
        eps=eps,
        n_random=min(n, 64),
        steps=steps,
        seed=seed,
        mode=mode,
        num_mask_classes=num_mask,
        device=dev,  # type: ignore[arg-type]
    )
    payload = cert.payload(layers=layers)
    if cert.bound.upper is None:
        err_console.print(
            "[yellow]warning:[/yellow] no certified upper bound (upper = null): "
            + "; ".join(cert.bound.reasons),
            highlight=False,
        )
    settings = settings_for(ds_name, n, target, eps, seed, steps, mode, shape)
    wall = time.perf_counter() - t0
    rec = make_record(
        "certify",
        model=cfg.to_dict(),
        dataset=ds_dict,
        settings=settings,
        payload=payload,
        wall_s=wall,
        device=dev,
    )
    _render(model_path.name, payload, wall, layers)
    if write_run and model_path.is_dir():
        p = write_record(record_path(model_path, "certify", settings), rec)
        console.print(f"record: {p}", highlight=False)
    if json_path is not None:
        write_record(json_path, rec)
        console.print(f"json: {json_path}", highlight=False)
    return rec


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
        str | None, typer.Option("--input-shape", help="C,H,W (needed for foreign models without data).")
    ] = None,
    target: Annotated[TargetOpt, typer.Option("--target", help="A, reflection (R = 2A − I) or both.")] = (
        TargetOpt.both
    ),
    eps: Annotated[str, typer.Option("--eps", help="ℓ2 radii, e.g. 36/255,72/255,108/255.")] = (
        "36/255,72/255,108/255"
    ),
    layers: Annotated[bool, typer.Option("--layers", help="Show and record the per-layer bounds.")] = False,
    json_file: Annotated[Path | None, typer.Option("--json", help="Also write the record here.")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the random points and searches.")] = 0,
    steps: Annotated[int, typer.Option("--steps", min=0, help="Adversarial search steps.")] = 10,
    mode: Annotated[ModeOpt, typer.Option("--mode", help="Bound mode: fast, or tight (small grids).")] = (
        ModeOpt.fast
    ),
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda, cuda:N.")] = "auto",
    list_rules: Annotated[
        bool,
        typer.Option("--list-rules", help="Print the ATen ops that have a bound rule, by family, and exit."),
    ] = False,
) -> None:
    """Certified Lipschitz upper bound, measured lower bounds, FNE test and certified robustness."""
    if list_rules:
        from robustbench_lip.lipschitz.bounds import registered_ops

        for family in ("linear", "activations", "spatial", "structural", "nonlipschitz", "user"):
            ops = registered_ops(family)
            if ops:
                label = "non-Lipschitz (bound null, with the reason)" if family == "nonlipschitz" else family
                console.print(f"[bold]{label}[/bold] ({len(ops)}): " + ", ".join(ops), highlight=False)
        return
    from robustbench_lip.attacks.eps import parse_eps_list

    eps_list = parse_eps_list(eps, norm="l2")
    shape = parse_shape(input_shape) if input_shape is not None else None
    if model is not None:
        certify_one(
            model,
            data,
            root,
            n,
            shape,
            target.value,
            eps_list,
            layers,
            json_file,
            seed,
            steps,
            mode.value,
            device,
        )
        return
    from robustbench_lip.runs import finished_runs, has_record

    if json_file is not None:
        raise RlipError("--json needs a single MODEL")

    runs = [r for r in finished_runs(runs_dir) if not has_record(r, "certify")]
    if not runs:
        console.print(f"nothing to certify: no finished run without a certificate under {runs_dir}")
        return
    for run in runs:
        console.print(f"[bold]{run.name}[/bold]")
        certify_one(
            run, data, root, n, shape, target.value, eps_list, layers, None, seed, steps, mode.value, device
        )


def register(app: typer.Typer) -> None:
    """Add `rlip certify` to the root app."""
    app.command("certify")(certify_cmd)

"""`rlip models` commands: list the registry, inspect a model file, export to torch.export (.pt2)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from robustbench_lip.cli.common import Arch, console, handle_errors
from robustbench_lip.errors import RlipError

sub = typer.Typer(help="Model architectures and model files.", no_args_is_help=True)


def _count(n: int) -> str:
    return f"{n / 1e6:.2f}M" if n >= 1e6 else f"{n / 1e3:.1f}k" if n >= 1e3 else str(n)


def _shape(shape: tuple[int, ...]) -> str:
    return "×".join(str(v) for v in shape)


@sub.command("list")
@handle_errors
def list_cmd(
    pattern: Annotated[
        str | None, typer.Argument(help="Only names matching this fnmatch pattern, e.g. '*tiny*'.")
    ] = None,
) -> None:
    """Registered architectures with their default size: task, parameters, input/output shape, R defined."""
    from robustbench_lip.models import count_params, create_model, list_models, output_shape

    names = list_models(pattern)
    if not names:
        raise RlipError(f"no registered model matches {pattern!r}; try `rlip models list`")
    table = Table(
        title="rlip models (default options)",
        caption="masks: mask classes; R: R = 2A − I is defined",
        pad_edge=False,
    )
    for col, justify in (
        ("name", "left"),
        ("task", "left"),
        ("params", "right"),
        ("input", "left"),
        ("output", "left"),
        ("masks", "right"),
        ("R", "left"),
    ):
        table.add_column(col, justify=justify, no_wrap=col in ("name", "output"))  # type: ignore[arg-type]
    for name in names:
        model = create_model(name)
        cfg = model.config
        table.add_row(
            name,
            cfg.task,
            _count(count_params(model)),
            _shape(cfg.input_size),
            _shape(output_shape(cfg)),
            "-" if cfg.num_mask_classes is None else str(cfg.num_mask_classes),
            "yes" if cfg.reflection_defined else "no",
        )
    console.print(table)


@sub.command("info")
@handle_errors
def info_cmd(
    path: Annotated[Path, typer.Argument(help="Model directory, .pt/.pth, .safetensors or .pt2 file.")],
    arch: Arch = None,
) -> None:
    """Load a model file (no code from it runs) and show its config."""
    from robustbench_lip.modelio import load_model
    from robustbench_lip.models import can_segment, count_params, output_shape

    model = load_model(path, arch=arch)
    cfg = model.config
    table = Table(title=str(path), show_header=False)
    table.add_column("key")
    table.add_column("value")
    rows = [
        ("arch", cfg.arch),
        ("task", cfg.task),
        ("params", f"{count_params(model):,}"),
        ("input", _shape(cfg.input_size)),
        ("output", _shape(output_shape(cfg))),
        ("classes", str(cfg.num_classes)),
        ("segments", f"yes ({cfg.num_mask_classes} mask classes)" if can_segment(model) else "no"),
        ("R = 2A − I", "yes" if cfg.reflection_defined else "no"),
        ("options", ", ".join(f"{k}={v}" for k, v in cfg.kwargs.items()) or "-"),
        ("mean / std", f"{cfg.mean} / {cfg.std}" if cfg.mean else "none (inputs used as given)"),
    ]
    for k, v in rows:
        table.add_row(k, v)
    console.print(table)


@sub.command("export")
@handle_errors
def export_cmd(
    source: Annotated[
        str, typer.Argument(help="A registered model name (random weights) or a model file/dir.")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output .pt2 file.")],
    arch: Arch = None,
    static_batch: Annotated[
        bool, typer.Option("--static-batch", help="Trace a fixed batch size instead of a symbolic one.")
    ] = False,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Example batch size.")] = 2,
    input_shape: Annotated[
        str | None,
        typer.Option(
            "--input-shape",
            help="C,H,W the archive is traced at (default: the model's; torchvision: 3,224,224).",
        ),
    ] = None,
) -> None:
    """Write a torch.export archive (.pt2) that `load_model` and other tools can run without rlip's code."""
    from robustbench_lip.cli.certify import parse_shape
    from robustbench_lip.modelio import export_pt2, load_model
    from robustbench_lip.models import create_model, list_models

    if out.suffix != ".pt2":
        raise RlipError(f"--out must end in .pt2, got {out}")
    shape = parse_shape(input_shape) if input_shape is not None else None
    if Path(source).exists():
        model = load_model(source, arch=arch, input_size=shape)
    elif source in list_models():
        model = create_model(source, **({"input_size": shape} if shape else {}))
    else:
        raise RlipError(f"{source!r} is neither a file nor a registered model; see `rlip models list`")
    export_pt2(model, out, batch_size=batch_size, dynamic_batch=not static_batch)
    console.print(f"wrote {out} ({model.config.arch}, input {_shape(model.config.input_size)})")


def register(app: typer.Typer) -> None:
    """Add `rlip models ...` to the root app."""
    app.add_typer(sub, name="models")

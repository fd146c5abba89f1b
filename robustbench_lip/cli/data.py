"""`rlip data` commands: list, preview, export."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from robustbench_lip.choices import ExportFormat, Split
from robustbench_lip.cli.common import console, handle_errors
from robustbench_lip.errors import RlipError

data_app = typer.Typer(
    name="data",
    help="Built-in and real datasets: list them, preview samples, export to CIFAR/COCO files.",
    no_args_is_help=True,
)


RootOpt = Annotated[
    Path | None,
    typer.Option(
        "--root", help="Folder of a real dataset (cifar10: holds cifar-10-batches-py/; coco: annotations/)."
    ),
]
SeedOpt = Annotated[
    int | None,
    typer.Option(
        "--seed",
        help="Built-ins: the generator seed (default 0). Real datasets: pick a random sample of --n images.",
    ),
]
SizeOpt = Annotated[
    int | None, typer.Option("--image-size", help="Image side in pixels (built-ins and coco).")
]
DownloadOpt = Annotated[
    bool, typer.Option("--download", help="cifar10 only: download into --root if the files are missing.")
]


def _options(name: str, seed: int | None, image_size: int | None, download: bool = False) -> dict[str, Any]:
    """The loader options of the CLI flags (RlipError for an unknown dataset)."""
    from robustbench_lip.data.registry import DATASETS, dataset_spec

    spec = dataset_spec(name)
    opts: dict[str, Any] = {}
    if seed is not None and spec.generated:
        opts["seed"] = seed
    if image_size is not None:
        opts["image_size"] = image_size
    if download:
        if not spec.download:
            takers = [n for n, s in DATASETS.items() if s.download]
            raise RlipError(f"--download is only for {', '.join(takers)} (got {name})")
        opts["download"] = True
    return opts


@data_app.command("list")
@handle_errors
def list_cmd(root: RootOpt = None) -> None:
    """Show the datasets: sizes, channels, classes, masks, and whether each can be used offline."""
    from rich.table import Table

    from robustbench_lip.data import dataset_table

    rows = dataset_table(str(root) if root else None)
    table = Table(title="datasets")
    for col in ("name", "train", "test", "size", "ch", "classes", "masks", "offline"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(
            r["name"],
            str(r["n_train"]),
            str(r["n_test"]),
            r["image_size"],
            str(r["channels"]),
            str(r["classes"]),
            r["masks"],
            r["offline"],
        )
    console.print(table)


@data_app.command("preview")
@handle_errors
def preview_cmd(
    name: Annotated[str, typer.Argument(help="Dataset name (see `rlip data list`).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="PNG file to write.")],
    root: RootOpt = None,
    split: Annotated[Split, typer.Option("--split", help="Which split to show.")] = Split.test,
    n: Annotated[int, typer.Option("--n", help="Number of samples to show.")] = 16,
    seed: SeedOpt = None,
    image_size: SizeOpt = None,
    download: DownloadOpt = False,
) -> None:
    """Write a PNG grid of samples with their masks overlaid."""
    import torch

    from robustbench_lip.data import get_dataset, render_preview
    from robustbench_lip.data.registry import dataset_spec

    if n < 1:
        raise RlipError(f"--n must be ≥ 1, got {n}")
    generated = dataset_spec(name).generated
    opts = _options(name, seed, image_size, download)
    if generated:
        opts[f"n_{split.value}"] = n  # generate only what is shown
    ds = get_dataset(name, split.value, root=str(root) if root else None, **opts)
    indices = None
    if seed is not None and not generated:
        g = torch.Generator().manual_seed(seed)
        indices = sorted(torch.randperm(len(ds), generator=g)[:n].tolist())
    path = render_preview(ds, out, n=n, indices=indices)
    console.print(f"wrote {path} ({min(n, len(ds))} {name} {split.value} samples)")


@data_app.command("export")
@handle_errors
def export_cmd(
    name: Annotated[str, typer.Argument(help="Dataset name (a built-in, or a real one with --root).")],
    format: Annotated[ExportFormat, typer.Option("--format", "-f", help="On-disk layout to write.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")],
    n: Annotated[int | None, typer.Option("--n", help="Images per split (default: the whole split).")] = None,
    split: Annotated[
        Split | None, typer.Option("--split", help="Only this split (default: train and test).")
    ] = None,
    root: RootOpt = None,
    seed: SeedOpt = None,
    image_size: SizeOpt = None,
    download: DownloadOpt = False,
) -> None:
    """Write a dataset in the genuine CIFAR-10 (python pickle batches) or COCO (JSON + PNG) layout."""
    from robustbench_lip.data import export_dataset

    if n is not None and n < 1:
        raise RlipError(f"--n must be ≥ 1, got {n}")
    path = export_dataset(
        name,
        format=format.value,
        out=out,
        n=n,
        split=split.value if split else None,
        root=str(root) if root else None,
        **_options(name, seed, image_size, download),
    )
    console.print(f"wrote {path}")


def register(app: typer.Typer) -> None:
    """Add the `data` command group to the root app."""
    app.add_typer(data_app, name="data")

"""`rlip train`: train one model with the Lipschitz penalty into a run directory."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from robustbench_lip.cli.common import (
    console,
    err_console,
    fail,
    handle_errors,
    interrupted_text,
    sigterm_as_interrupt,
)
from robustbench_lip.config import OptimConfig, PenaltyConfig, TrainConfig
from robustbench_lip.errors import RlipError
from robustbench_lip.evaluations.base import setting, with_settings


def parse_options(items: list[str] | None, what: str) -> dict[str, Any]:
    """`KEY=VALUE` items → dict; values parsed as JSON when possible (numbers, true/false, lists)."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise RlipError(f"{what} expects KEY=VALUE, got {item!r}")
        try:
            out[key.strip()] = json.loads(value)
        except ValueError:
            out[key.strip()] = value
    return out


class ProgressView:
    """A rich progress bar fed by the trainer's progress events (one task per run)."""

    def __init__(self, progress: Progress, label: str) -> None:
        self.progress = progress
        self.label = label
        self.task: Any = None

    def __call__(self, e: dict[str, Any]) -> None:
        ev = e["event"]
        if ev == "start":
            total = e["epochs"] * e["steps"]
            done = e["start_epoch"] * e["steps"]
            self.task = self.progress.add_task(self.label, total=total, completed=done, info="")
        elif ev == "step" and self.task is not None:
            sigma = "" if e["sigma"] is None else f" σ {e['sigma']:.3g}"
            info = (
                f"ep {e['epoch']} loss {e['loss']:.3f} pen {e['penalty']:.3g}{sigma} "
                f"{e['images_per_s']:.0f} img/s"
            )
            self.progress.update(self.task, advance=1, info=info)


def make_progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[info]}"),
        console=err_console,
        transient=False,
    )


def final_table(title: str, final: dict[str, Any]) -> Table:
    t = Table(title=title)
    t.add_column("metric")
    t.add_column("value", justify="right")
    for k, v in final.items():
        t.add_row(k, "n/a" if v is None else f"{v:.4g}")
    return t


@dataclass(frozen=True)
class DataModelOptions:
    """The CLI's spelling of TrainConfig.data_options and model_options."""

    n_train: int | None = setting(None, "Built-in datasets: training images.")
    n_test: int | None = setting(None, "Built-in datasets: test images.")
    image_size: int | None = setting(None, "Built-in datasets: side.")
    # a list type: Typer's type of a repeated option (its default None is immutable)
    data_opt: list[str] | None = setting(None, "Dataset option KEY=VALUE.")  # noqa: RUF009
    model_opt: list[str] | None = setting(None, "Model option KEY=VALUE (e.g. width=8).")  # noqa: RUF009

    def data_options(self) -> dict[str, Any]:
        """--data-opt items, then --n-train / --n-test / --image-size when given."""
        out = parse_options(self.data_opt, "--data-opt")
        sizes = {"n_train": self.n_train, "n_test": self.n_test, "image_size": self.image_size}
        return out | {k: v for k, v in sizes.items() if v is not None}


@handle_errors
@with_settings
def train_cmd(
    out: Annotated[Path, typer.Option("--out", help="Run directory to create or resume.")],
    *,
    run: TrainConfig,
    options: DataModelOptions,
    penalty: PenaltyConfig,
    optim: OptimConfig,
) -> None:
    """Train MODEL on DATA with the Lipschitz penalty λ into the run directory --out (resumes)."""
    from robustbench_lip.training import train

    cfg = dataclasses.replace(
        run,
        data_options=options.data_options(),
        model_options=parse_options(options.model_opt, "--model-opt"),
        penalty=penalty,
        optim=optim,
    )
    try:
        with sigterm_as_interrupt(), make_progress() as progress:
            res = train(cfg, out, progress=ProgressView(progress, out.name))
    except KeyboardInterrupt as e:  # train.json says "interrupted"; the last epoch's checkpoint stays
        raise fail(f"{interrupted_text(e)}; rerun the same command to resume from the last epoch") from None
    if res.skipped:
        console.print(f"{out}: already finished (nothing retrained)", soft_wrap=True)
    console.print(final_table(f"{out} ({res.status}, {res.wall_s:.1f} s)", res.final))
    console.print(f"model and results in {out}", soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add `rlip train` to the root app."""
    app.command("train")(train_cmd)

"""`rlip train`: train one model with the Lipschitz penalty into a run directory."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from robustbench_lip.choices import Loss, Optimizer, Reduce, RegBn, RegPoints, RegTarget, Schedule
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

# the options' defaults: the configs' own
_T = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
_P = PenaltyConfig()
_O = OptimConfig()


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


@handle_errors
def train_cmd(
    model: Annotated[str, typer.Option("--model", help="Registered model name (rlip models list).")],
    data: Annotated[str, typer.Option("--data", help="Dataset name (rlip data list).")],
    out: Annotated[Path, typer.Option("--out", help="Run directory to create or resume.")],
    lam: Annotated[float, typer.Option("--lam", help="Penalty weight λ ≥ 0.")] = _P.lam,
    root: Annotated[
        str | None, typer.Option("--root", help="Dataset folder (cifar10, coco, folder: your own images).")
    ] = None,
    reg_target: Annotated[
        RegTarget | None,
        typer.Option("--reg-target", help="A or reflection (default: reflection if defined)."),
    ] = _P.target,
    reg_eps: Annotated[float, typer.Option("--reg-eps", help="Hinge: λ·max(σ², 1 − eps).")] = _P.eps,
    reg_iters: Annotated[
        int, typer.Option("--reg-iters", help="Power iterations per step before the final product.")
    ] = _P.iters,
    reg_points: Annotated[RegPoints, typer.Option("--reg-points", help="data or interp.")] = RegPoints(
        _P.points
    ),
    reg_reduce: Annotated[Reduce, typer.Option("--reg-reduce", help="max or mean over points.")] = Reduce(
        _P.reduce
    ),
    reg_subbatch: Annotated[
        int, typer.Option("--reg-subbatch", help="Penalty points per step (0 = all).")
    ] = _P.subbatch,
    reg_every: Annotated[
        int, typer.Option("--reg-every", help="Apply the penalty every k-th step.")
    ] = _P.every,
    reg_warm: Annotated[
        bool, typer.Option("--reg-warm", help="Start the power iteration from the previous step's vectors.")
    ] = _P.warm_start,
    reg_bn: Annotated[
        RegBn,
        typer.Option("--reg-bn", help="BatchNorm statistics in the penalty: the penalty points' or running."),
    ] = RegBn(_P.bn),
    reg_hard: Annotated[
        int, typer.Option("--reg-hard", help="Sub-batch slots kept for the hardest points so far.")
    ] = _P.hard,
    epochs: Annotated[int, typer.Option("--epochs")] = _T["epochs"],
    batch_size: Annotated[int, typer.Option("--batch-size")] = _T["batch_size"],
    optimizer: Annotated[Optimizer, typer.Option("--optimizer")] = Optimizer(_O.name),
    lr: Annotated[float, typer.Option("--lr")] = _O.lr,
    weight_decay: Annotated[float, typer.Option("--weight-decay")] = _O.weight_decay,
    schedule: Annotated[Schedule, typer.Option("--schedule")] = Schedule(_O.schedule),
    warmup: Annotated[float, typer.Option("--warmup", help="Warm-up fraction of the steps.")] = _O.warmup,
    dice: Annotated[bool, typer.Option("--dice", help="Add a soft Dice loss (segmenters).")] = _T["dice"],
    logit_scale: Annotated[
        float, typer.Option("--logit-scale", help="Segmenters: the loss sees scale·logits (mask unchanged).")
    ] = _T["logit_scale"],
    augment: Annotated[
        bool | None, typer.Option("--augment/--no-augment", help="Flip/crop (default: natural images only).")
    ] = None,
    noise_sigma: Annotated[
        float,
        typer.Option(
            "--noise-sigma",
            min=0.0,
            help="Gaussian noise augmentation: add N(0, S²) to the training inputs (pixel units; "
            "not clamped, as in Cohen et al.; 0 = off). For randomized smoothing.",
        ),
    ] = _T["noise_sigma"],
    seed: Annotated[int, typer.Option("--seed")] = _T["seed"],
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda or cuda:N.")] = _T["device"],
    n_train: Annotated[
        int | None, typer.Option("--n-train", help="Built-in datasets: training images.")
    ] = None,
    n_test: Annotated[int | None, typer.Option("--n-test", help="Built-in datasets: test images.")] = None,
    image_size: Annotated[int | None, typer.Option("--image-size", help="Built-in datasets: side.")] = None,
    data_opt: Annotated[
        list[str] | None, typer.Option("--data-opt", help="Dataset option KEY=VALUE.")
    ] = None,
    model_opt: Annotated[
        list[str] | None, typer.Option("--model-opt", help="Model option KEY=VALUE (e.g. width=8).")
    ] = None,
    sigma_points: Annotated[int, typer.Option("--sigma-points", help="Held-out points for σ.")] = _T[
        "sigma_points"
    ],
    loss: Annotated[
        Loss, typer.Option("--loss", help="ce, margin_ce (offset, temperature), hinge (margin), hkr.")
    ] = Loss(_T["loss"]),
    loss_offset: Annotated[
        float | None, typer.Option("--loss-offset", help="margin_ce: logit offset of the true class.")
    ] = None,
    loss_temperature: Annotated[
        float | None, typer.Option("--loss-temperature", help="margin_ce: temperature > 0.")
    ] = None,
    loss_margin: Annotated[float | None, typer.Option("--loss-margin", help="hinge / hkr: margin.")] = None,
    loss_alpha: Annotated[
        float | None, typer.Option("--loss-alpha", help="hkr: hinge weight in [0, 1].")
    ] = None,
) -> None:
    """Train MODEL on DATA with the Lipschitz penalty λ into the run directory --out (resumes)."""
    from robustbench_lip.training import train

    data_options = parse_options(data_opt, "--data-opt")
    for k, v in (("n_train", n_train), ("n_test", n_test), ("image_size", image_size)):
        if v is not None:
            data_options[k] = v
    penalty = PenaltyConfig(
        lam=lam,
        target=reg_target,
        eps=reg_eps,
        iters=reg_iters,
        points=reg_points,
        reduce=reg_reduce,
        subbatch=reg_subbatch,
        every=reg_every,
        warm_start=reg_warm,
        bn=reg_bn,
        hard=reg_hard,
    )
    optim = OptimConfig(name=optimizer, lr=lr, weight_decay=weight_decay, schedule=schedule, warmup=warmup)
    cfg = TrainConfig(
        model=model,
        data=data,
        root=root,
        data_options=data_options,
        model_options=parse_options(model_opt, "--model-opt"),
        penalty=penalty,
        optim=optim,
        epochs=epochs,
        batch_size=batch_size,
        dice=dice,
        logit_scale=logit_scale,
        augment=augment,
        noise_sigma=noise_sigma,
        seed=seed,
        device=device,
        sigma_points=sigma_points,
        loss=loss,
        loss_offset=loss_offset,
        loss_temperature=loss_temperature,
        loss_margin=loss_margin,
        loss_alpha=loss_alpha,
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

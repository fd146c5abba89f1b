"""`rlip certify --smoothing SIGMA[,SIGMA…]`: randomized-smoothing certificates (one record per σ)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.table import Table

from robustbench_lip.cli.common import console
from robustbench_lip.cli.progress import step_progress
from robustbench_lip.errors import RlipError


def _fmt(v: Any) -> str:
    return "—" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v)


def smoothing_table(name: str, sm: dict[str, Any]) -> Table:
    """Certified accuracy / mIoU / pixel abstention of the smoothed model g per ℓ2 radius."""
    cls, seg = sm.get("classification"), sm.get("segmentation")
    t = Table(
        title=f"smoothed certificate {name} "
        f"(σ={sm['sigma']:g}, n={sm['n']}, n0={sm['n0']}, α={sm['alpha']:g})",
        caption="probabilistic: each value holds with probability ≥ 1 − α over the Monte Carlo draw, "
        "for the smoothed model g (abstentions count as wrong)",
    )
    t.add_column("radius (ℓ2)", justify="left")
    cols = []
    if cls:
        cols.append(("cert acc", cls["certified_accuracy"]))
    if seg:
        cols += [("cert mIoU", seg["certified_miou"]), ("cert pixel acc", seg["certified_pixel_accuracy"])]
        cols.append(("pixel abstain", seg["pixel_abstention_rate"]))
    for label, _ in cols:
        t.add_column(label, justify="right")
    from robustbench_lip.attacks.eps import parse_eps_token

    keys = sorted((cls or seg)["certified_accuracy" if cls else "certified_miou"], key=parse_eps_token)
    for k in keys:
        t.add_row(k, *(_fmt(d.get(k)) for _, d in cols))
    return t


def _render(name: str, rec: Any) -> None:
    sm = rec.smoothing
    console.print(smoothing_table(name, sm))
    cls, seg = sm.get("classification"), sm.get("segmentation")
    parts = []
    if cls:
        parts.append(f"image abstention {_fmt(cls['abstention_rate'])}")
        parts.append(f"g accuracy {_fmt(cls['clean']['accuracy'])}")
    if seg:
        parts.append(f"pixel abstention (r=0) {_fmt(seg['abstention_rate'])}")
        parts.append(f"g mIoU {_fmt(seg['clean']['miou'])}")
    src = (sm.get("masks") or {}).get("source")
    parts += [f"masks: {src}"] if src else []
    console.print("; ".join([*parts, f"{rec.wall_s:.1f} s"]), highlight=False)
    for note in rec.notes or []:
        console.print(f"note: {note}", highlight=False)


def smooth_one(model: Any, sigma: float, json_path: Path | None, **options: Any) -> None:
    """One smoothed certificate (a path or a run's Context; evaluations.smoothing.run) with a
    progress bar; render."""
    from robustbench_lip.evaluations.smoothing.run import certify_smoothed_run
    from robustbench_lip.records import record_path, write_record

    path = Path(getattr(model, "path", model))
    with step_progress(f"smoothing {path.name} (σ={sigma:g})") as update:
        rec = certify_smoothed_run(
            model, sigma=sigma, **options, progress=lambda done, total: update("", done, total)
        )
    _render(path.name, rec)
    if path.is_dir():
        console.print(f"record: {record_path(path, 'certify', rec.settings)}", highlight=False)
    if json_path is not None:
        write_record(json_path, rec)
        console.print(f"json: {json_path}", highlight=False)


def smooth_cmd(
    model: Path | None, runs_dir: Path, sigma_text: str, json_path: Path | None, *, settings: Any, inputs: Any
) -> None:
    """Smoothed certificates of MODEL, or of every finished run under runs_dir that lacks one, per σ
    (settings: SmoothingSettings, inputs: evaluations.base.Inputs)."""
    from robustbench_lip.evaluations.smoothing.run import parse_sigmas, pending_smoothing

    sigmas = parse_sigmas(sigma_text)
    if json_path is not None and (model is None or len(sigmas) > 1):
        raise RlipError("--json needs a single MODEL and a single --smoothing σ")
    options = {"settings": settings, "inputs": inputs}
    if model is not None:
        for s in sigmas:
            smooth_one(model, s, json_path, **options)
        return
    todo = pending_smoothing(runs_dir, sigmas, settings, inputs)
    if not todo:
        console.print(
            f"nothing to certify: every finished run under {runs_dir} has a smoothed certificate "
            "for these settings"
        )
        return
    for ctx, s in todo:
        console.print(f"[bold]{ctx.path.name}[/bold]")
        smooth_one(ctx, s, None, **options)

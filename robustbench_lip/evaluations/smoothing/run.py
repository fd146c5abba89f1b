"""`certify_smoothed_run`: randomized-smoothing certificates of a saved model, as certify records.

One record per noise level σ: kind "certify" with `certificate: "smoothed"` (never a Lipschitz
certificate; its `lipschitz`, `certified_*` and `clean` keys stay null), written to
`RUN/results/certify-<key>.json`. Its settings start with `"certificate": "smoothed"`, so their key
never equals a Lipschitz certificate's: a rerun with the same settings is skipped, other settings
(σ, n, n0, α, seed, data, number of images) are a new record. Its payload `smoothing` holds
σ, α, n, n0, seed and
- `classification`: the smoothed classifier's certificate (summary.SmoothingSummary as a
  dict: certified accuracy per radius, abstention rate, per-sample radii in dataset order, null for
  an abstention), for classifiers;
- `segmentation`: SegCertify per pixel (Holm) — certified mIoU, pixel accuracy and pixel abstention
  rate per radius — for segmenters, image-to-image models (mask z > 0) and the CAM masks of
  classifiers that have `mask_logits` (on data with masks);
- `masks`: how the masks were certified, or why they were not.
Every number holds with probability ≥ 1 − α over the Monte Carlo draw, for the smoothed model g, not
the base model f (see classification.py). Deterministic given the seed (image i's noise is seeded by
(seed, i)); the model's modes and the global RNG are left untouched.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import torch

from robustbench_lip.errors import RlipError
from robustbench_lip.evaluations.base import Context, Inputs, evaluate, pending, split_options
from robustbench_lip.evaluations.data_check import check_data
from robustbench_lip.evaluations.inputs import dataset_name
from robustbench_lip.evaluations.smoothing.sampling import check_positive_int, check_sigma
from robustbench_lip.evaluations.smoothing.settings import SMOOTHING, SmoothingSettings
from robustbench_lip.evaluations.smoothing.summary import certify_smoothed
from robustbench_lip.records import CertificateKind, CertifyRecord, env_info

log = logging.getLogger(__name__)

SMOOTHED = CertificateKind.SMOOTHED.value
NEED = "cannot plan its smoothed certificate"
Progress = Callable[[int, int], None]


def parse_sigmas(text: str) -> list[float]:
    """'0.25,0.5' or '64/255' → σ values (> 0, finite, duplicates dropped, order kept)."""
    out: list[float] = []
    for tok in text.split(","):
        t = tok.strip()
        try:
            value = float(Fraction(t)) if "/" in t else float(t)
        except (ValueError, ZeroDivisionError):
            raise RlipError(
                f"bad --smoothing value {tok!r}: expected σ values like 0.25,0.5 or 64/255"
            ) from None
        check_sigma(value)
        if value not in out:
            out.append(value)
    return out


def planned_smoothing_settings(
    run_dir: str | os.PathLike[str] | Context,
    *,
    sigma: float,
    settings: SmoothingSettings | None = None,
    inputs: Inputs | None = None,
    **options: Any,
) -> dict[str, Any]:
    """The settings `certify_smoothed_run` records for a run folder, from its config.json alone
    (options: fields of `Inputs` / `SmoothingSettings` in place of the two)."""
    if settings is None or inputs is None:
        inputs, settings = split_options(options, Inputs, SmoothingSettings)
    ctx = run_dir if isinstance(run_dir, Context) else Context(Path(run_dir))
    name, shape = ctx.planned_inputs(inputs.data, inputs.input_shape, need=NEED)
    return settings.record(inputs, name, sigma, shape)


def pending_smoothing(
    runs_dir: str | os.PathLike[str], sigmas: Sequence[float], settings: SmoothingSettings, inputs: Inputs
) -> list[tuple[Context, float]]:
    """(run context, σ) of the finished runs under `runs_dir` without a smoothed record for these
    settings (the one "already recorded" rule, base.pending)."""

    def plan(ctx: Context) -> list[tuple[float, dict[str, Any]]]:
        return [
            (s, planned_smoothing_settings(ctx, sigma=s, settings=settings, inputs=inputs)) for s in sigmas
        ]

    return pending(runs_dir, "certify", plan)


def runs_to_smooth(
    runs_dir: str | os.PathLike[str], sigmas: Sequence[float], **options: Any
) -> list[tuple[Path, float]]:
    """(run, σ) pairs of the finished runs under `runs_dir` without a smoothed record for these
    settings (options: fields of `Inputs` and `SmoothingSettings`)."""
    inputs, settings = split_options(options, Inputs, SmoothingSettings)
    return [(ctx.path, s) for ctx, s in pending_smoothing(runs_dir, sigmas, settings, inputs)]


@dataclass
class _MaskPlan:
    """How a model's masks are smoothed: forward (None = the model), rule; or why not (reason)."""

    forward: Callable[[torch.Tensor], torch.Tensor] | None = None
    rule: str = "auto"
    source: str | None = None
    reason: str | None = None


def _mask_plan(model: torch.nn.Module, ds_info: Any) -> _MaskPlan:
    """Which segmentation the smoothed certificate covers for this model and dataset."""
    cfg = model.config
    if not getattr(ds_info, "has_masks", False):
        return _MaskPlan(reason="the dataset has no masks")
    if cfg.task == "classification":
        if getattr(cfg, "num_mask_classes", None) is None:
            return _MaskPlan(reason="the classifier predicts no masks (no mask classes)")
        if callable(getattr(model, "mask_logits", None)):
            return _MaskPlan(forward=model.mask_logits, rule="argmax", source="CAM masks (mask_logits)")
        return _MaskPlan(reason="the classifier has no mask_logits (no CAM masks)")
    if cfg.task == "segmentation":
        return _MaskPlan(rule="argmax", source="segmentation logits (argmax)")
    if cfg.task == "image2image":
        k = ds_info.num_mask_classes
        if cfg.in_channels == 1 and k in (None, 2):
            return _MaskPlan(rule="threshold", source="image-to-image output (mask z > 0)")
        if cfg.in_channels == k:
            return _MaskPlan(rule="argmax", source="image-to-image output (argmax over channels)")
        return _MaskPlan(reason=f"output channels {cfg.in_channels} do not match the mask classes {k}")
    return _MaskPlan(reason=f"task {cfg.task!r} has no masks to certify")


def _summary(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k != "certificate"}


def _smooth(
    model: torch.nn.Module,
    ds: Any,
    sigma: float,
    opts: dict[str, Any],
    progress: Progress | None,
    correction: str = SMOOTHING.correction,
) -> tuple[dict[str, Any], list[str]]:
    """The `smoothing` payload (without the envelope) and notes."""
    plan = _mask_plan(model, ds.info)
    classify = model.config.task == "classification"
    passes = int(classify) + int(plan.reason is None)
    if passes == 0:
        raise RlipError(f"no smoothed certificate for this model: {plan.reason}")
    n_images = min(opts["n_images"], len(ds))
    done = [0]

    def report(k: int, _total: int) -> None:
        if progress is not None:
            progress(done[0] + k, passes * n_images)

    out: dict[str, Any] = {"classification": None, "segmentation": None}
    if classify:
        out["classification"] = _summary(
            certify_smoothed(model, ds, sigma=sigma, task="classification", progress=report, **opts).to_dict()
        )
        done[0] += n_images
    if plan.reason is None:
        seg = certify_smoothed(
            model, ds, sigma=sigma, task="segmentation", forward=plan.forward, rule=plan.rule,
            correction=correction, progress=report, **opts,
        )  # fmt: skip
        out["segmentation"] = _summary(seg.to_dict())
    out["masks"] = {"source": plan.source, "reason": plan.reason}
    notes = [] if plan.reason is None else [f"no smoothed mask certificate: {plan.reason}"]
    return out, notes


def certify_smoothed_run(
    model_path: str | os.PathLike[str] | Context,
    settings: SmoothingSettings | None = None,
    inputs: Inputs | None = None,
    *,
    sigma: float,
    write: bool = True,
    progress: Progress | None = None,
    **options: Any,
) -> CertifyRecord:
    """Smoothed certificate (noise σ, [0, 1] pixel units) of the model at `model_path` (or its
    Context) on the first `n` test images of `data` (default: the model's own dataset) and its record.

    settings / inputs: `SmoothingSettings` (smoothing_n / smoothing_n0: Monte Carlo estimation /
    selection samples per image; alpha: each image's — and each radius's, for masks — statement fails
    with probability ≤ alpha; batch_size) and `base.Inputs`; or their fields as keywords.
    progress(done, total) is called per group of images (total = images × passes; classifiers with
    CAM masks take two passes). With `write`, a run folder gets the record in `results/`. The global
    RNGs are left as they were (and `_smooth` restores the model's modes)."""
    from robustbench_lip.device import preserved_rng

    if settings is None or inputs is None:
        inputs, settings = split_options(options, Inputs, SmoothingSettings)
    elif options:
        raise TypeError(f"options {sorted(options)} given with settings")
    s, i = settings, inputs

    def compute(ctx: Context) -> CertifyRecord:
        with preserved_rng():  # building the model before loading its weights draws from the global RNG
            return _certify_smoothed_run(ctx, s, i, sigma, progress)

    return evaluate(model_path, compute, write)


def _certify_smoothed_run(
    ctx: Context, settings: SmoothingSettings, inputs: Inputs, sigma: float, progress: Progress | None
) -> CertifyRecord:
    from robustbench_lip.device import resolve_device

    t0 = time.perf_counter()
    check_positive_int("--n", inputs.n)
    dev = resolve_device(inputs.device)
    name = dataset_name(inputs.data, ctx.read_meta())
    if name is None:
        raise RlipError("smoothed certificates need labelled data: pass --data NAME (not 'none')")
    model = ctx.load_model(dev, None, inputs.input_shape)
    ds = ctx.test_set(name, inputs.root)
    check_data(model.config, ds.info, inputs.root, ctx.read_meta(), inputs.other_data)
    shape = tuple(ds[0][0].shape)
    if inputs.input_shape is not None and tuple(inputs.input_shape) != shape:
        given, found = ",".join(map(str, inputs.input_shape)), ",".join(map(str, shape))
        raise RlipError(f"--input-shape {given} does not match the data's {found}")
    rec_settings = settings.record(inputs, name, sigma, shape)
    opts = {
        "n_images": inputs.n, "n0": settings.smoothing_n0, "n": settings.smoothing_n, "alpha": settings.alpha,
        "seed": inputs.seed, "batch_size": settings.batch_size, "device": dev,
    }  # fmt: skip
    payload, notes = _smooth(model, ds, rec_settings["sigma"], opts, progress, settings.correction)
    wall = time.perf_counter() - t0
    smoothing = {
        "sigma": rec_settings["sigma"], "alpha": rec_settings["alpha"], "n": settings.smoothing_n,
        "n0": settings.smoothing_n0, "seed": int(inputs.seed), "batch_size": settings.batch_size, **payload,
    }  # fmt: skip
    return CertifyRecord(
        model=model.config.to_dict(),
        dataset=ds.info.to_dict(),
        settings=rec_settings,
        env=env_info(dev),
        wall_s=wall,
        certificate=CertificateKind.SMOOTHED,
        smoothing=smoothing,
        timings={"smoothing_s": wall},
        notes=notes,
    )

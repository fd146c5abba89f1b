"""`certify_smoothed_run`: randomized-smoothing certificates of a saved model, as certify records.

One record per noise level σ: kind "certify" with `certificate: "smoothed"` (never a Lipschitz
certificate; its `lipschitz`, `certified_*` and `clean` keys stay null), written to
`RUN/results/certify-<key>.json`. Its settings start with `"certificate": "smoothed"`, so their key
never equals a Lipschitz certificate's: a rerun with the same settings is skipped, other settings
(σ, n, n0, α, seed, data, number of images) are a new record. Its payload `smoothing` holds
σ, α, n, n0, seed and
- `classification`: the smoothed classifier's certificate (smoothing_summary.SmoothingSummary as a
  dict: certified accuracy per radius, abstention rate, per-sample radii in dataset order, null for
  an abstention), for classifiers;
- `segmentation`: SegCertify per pixel (Holm) — certified mIoU, pixel accuracy and pixel abstention
  rate per radius — for segmenters, image-to-image models (mask z > 0) and the CAM masks of
  classifiers that have `mask_logits` (on data with masks);
- `masks`: how the masks were certified, or why they were not.
Every number holds with probability ≥ 1 − α over the Monte Carlo draw, for the smoothed model g, not
the base model f (see smoothing.py). Deterministic given the seed (image i's noise is seeded by
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
from robustbench_lip.evaluations.data_check import check_data
from robustbench_lip.evaluations.inputs import dataset_name, load_test_set, model_meta, planned_inputs
from robustbench_lip.evaluations.smoothing.sampling import check_positive_int, check_sigma
from robustbench_lip.evaluations.smoothing.statistics import check_alpha
from robustbench_lip.evaluations.smoothing.summary import certify_smoothed
from robustbench_lip.records import (
    CertificateKind,
    CertifyRecord,
    env_info,
    is_recorded,
    record_path,
    write_record,
)

log = logging.getLogger(__name__)

SMOOTHED = CertificateKind.SMOOTHED.value
DEFAULT_N, DEFAULT_N0, DEFAULT_ALPHA = 1000, 100, 0.001
BATCH_SIZE = 250
CORRECTION = "holm"
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


def smoothing_settings(
    data: str | None, n: int, sigma: float, samples: int, n0: int, alpha: float, seed: int,
    input_shape: Sequence[int], other_data: bool = False,
) -> dict[str, Any]:  # fmt: skip
    """The settings of a smoothed certify record (their key names the file; `certificate` first);
    `other_data` only when true (evaluation.data_check)."""
    s = {
        "certificate": SMOOTHED,
        "data": data,
        "n": int(n),
        "sigma": float(check_sigma(sigma)),
        "smoothing_n": check_positive_int("--smoothing-n", samples),
        "smoothing_n0": check_positive_int("--smoothing-n0", n0),
        "alpha": check_alpha(alpha),
        "correction": CORRECTION,
        "seed": int(seed),
        "input_shape": [int(s) for s in input_shape],
    }
    return {**s, "other_data": True} if other_data else s


def planned_smoothing_settings(
    run_dir: str | os.PathLike[str], *, sigma: float, data: str | None = None, n: int = 256,
    samples: int = DEFAULT_N, n0: int = DEFAULT_N0, alpha: float = DEFAULT_ALPHA, seed: int = 0,
    input_shape: Sequence[int] | None = None, other_data: bool = False,
) -> dict[str, Any]:  # fmt: skip
    """The settings `certify_smoothed_run` records for a run folder, from its config.json alone."""
    name, shape = planned_inputs(run_dir, data, input_shape, need="cannot plan its smoothed certificate")
    return smoothing_settings(name, n, sigma, samples, n0, alpha, seed, shape, other_data)


def runs_to_smooth(
    runs_dir: str | os.PathLike[str], sigmas: Sequence[float], **options: Any
) -> list[tuple[Path, float]]:
    """(run, σ) pairs of the finished runs under `runs_dir` without a smoothed record for these
    settings (options: those of `planned_smoothing_settings` but sigma)."""
    from robustbench_lip.runs import finished_runs

    return [
        (r, s)
        for r in finished_runs(runs_dir)
        for s in sigmas
        if not is_recorded(r, "certify", planned_smoothing_settings(r, sigma=s, **options))
    ]


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
    model: torch.nn.Module, ds: Any, sigma: float, opts: dict[str, Any], progress: Progress | None
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
            correction=CORRECTION, progress=report, **opts,
        )  # fmt: skip
        out["segmentation"] = _summary(seg.to_dict())
    out["masks"] = {"source": plan.source, "reason": plan.reason}
    notes = [] if plan.reason is None else [f"no smoothed mask certificate: {plan.reason}"]
    return out, notes


def certify_smoothed_run(
    model_path: str | os.PathLike[str],
    *,
    sigma: float,
    data: str | None = None,
    root: str | os.PathLike[str] | None = None,
    n: int = 256,
    samples: int = DEFAULT_N,
    n0: int = DEFAULT_N0,
    alpha: float = DEFAULT_ALPHA,
    seed: int = 0,
    input_shape: Sequence[int] | None = None,
    batch_size: int = BATCH_SIZE,
    device: str | torch.device = "auto",
    write: bool = True,
    progress: Progress | None = None,
    other_data: bool = False,
) -> CertifyRecord:
    """Smoothed certificate (noise σ, [0, 1] pixel units) of the model at `model_path` on the first
    `n` test images of `data` (default: the model's own dataset) and its record.

    samples / n0: Monte Carlo estimation / selection samples per image; alpha: each image's (and
    each radius's, for masks) statement fails with probability ≤ alpha. progress(done, total) is
    called per group of images (total = images × passes; classifiers with CAM masks take two
    passes). With `write`, a run folder gets the record in `results/` (record_path). The global RNGs
    are left as they were (and `_smooth` restores the model's modes)."""
    from robustbench_lip.device import preserved_rng

    with preserved_rng():  # building the model before loading its weights draws from the global RNG
        return _certify_smoothed_run(
            Path(model_path), sigma=sigma, data=data, root=root, n=n, samples=samples, n0=n0, alpha=alpha,
            seed=seed, input_shape=input_shape, batch_size=batch_size, device=device, write=write,
            progress=progress, other_data=other_data,
        )  # fmt: skip


def _certify_smoothed_run(path: Path, **kw: Any) -> CertifyRecord:
    from robustbench_lip.device import resolve_device
    from robustbench_lip.modelio import load_model

    t0 = time.perf_counter()
    sigma, data, root, n, samples, n0 = (kw[k] for k in ("sigma", "data", "root", "n", "samples", "n0"))
    alpha, seed, input_shape, batch_size = (kw[k] for k in ("alpha", "seed", "input_shape", "batch_size"))
    if not path.exists():
        raise RlipError(f"no such model file or folder: {path}")
    check_positive_int("--n", n)
    dev = resolve_device(kw["device"])
    meta = model_meta(path)
    name = dataset_name(data, meta)
    if name is None:
        raise RlipError("smoothed certificates need labelled data: pass --data NAME (not 'none')")
    model = load_model(path, device=dev, input_size=tuple(input_shape) if input_shape else None)
    ds = load_test_set(name, root, meta)
    check_data(model.config, ds.info, root, meta, kw["other_data"])
    shape = tuple(ds[0][0].shape)
    if input_shape is not None and tuple(input_shape) != shape:
        given, found = ",".join(map(str, input_shape)), ",".join(map(str, shape))
        raise RlipError(f"--input-shape {given} does not match the data's {found}")
    settings = smoothing_settings(name, n, sigma, samples, n0, alpha, seed, shape, kw["other_data"])
    opts = {"n_images": n, "n0": n0, "n": samples, "alpha": alpha, "seed": seed, "batch_size": batch_size,
            "device": dev}  # fmt: skip
    payload, notes = _smooth(model, ds, settings["sigma"], opts, kw["progress"])
    wall = time.perf_counter() - t0
    smoothing = {
        "sigma": settings["sigma"], "alpha": settings["alpha"], "n": samples, "n0": n0,
        "seed": int(seed), "batch_size": batch_size, **payload,
    }  # fmt: skip
    rec = CertifyRecord(
        model=model.config.to_dict(),
        dataset=ds.info.to_dict(),
        settings=settings,
        env=env_info(dev),
        wall_s=wall,
        certificate=CertificateKind.SMOOTHED,
        smoothing=smoothing,
        timings={"smoothing_s": wall},
        notes=notes,
    )
    if kw["write"] and path.is_dir():
        write_record(record_path(path, "certify", settings), rec)
    return rec

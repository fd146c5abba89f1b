"""`certify_run`: certify a saved model (run folder or model file) and return its certify record.

The evaluation protocol of `base`: a `Context` reads config.json once and loads the model and the
data from it (evaluations.inputs: `data`, else the model's own dataset; "none": `min(n, 64)` uniform
random points), `certificate.certify` computes, a `CertifyRecord` is assembled with the settings
`CertifySettings.record` derives (data, n, target, eps, seed, steps, mode, input shape, lower budget)
and, for a run folder, written to `RUN/results/certify-<key>.json` (base.record).
`runs_to_certify` is the "already recorded" rule for a runs folder (base.pending).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from robustbench_lip.errors import RlipError
from robustbench_lip.evaluations.base import Context, Inputs, evaluate, pending, split_options
from robustbench_lip.evaluations.data_check import check_data
from robustbench_lip.evaluations.inputs import check_input_memory, dataset_name
from robustbench_lip.evaluations.lipschitz.certificate import certify
from robustbench_lip.evaluations.lipschitz.settings import CertifySettings
from robustbench_lip.evaluations.steps import ProgressFn
from robustbench_lip.modelio.hints import with_hint
from robustbench_lip.records import CertifyRecord, env_info

log = logging.getLogger(__name__)
NEED = "cannot plan its certificate"


def planned_settings(
    run_dir: str | os.PathLike[str] | Context,
    settings: CertifySettings | None = None,
    inputs: Inputs | None = None,
    **options: Any,
) -> dict[str, Any]:
    """The settings `certify_run` records for a run folder, from its config.json alone (no model
    or data loaded; the input shape is the model's, which is the data's for models trained here).
    options: fields of `Inputs` / `CertifySettings` in place of the two."""
    if settings is None or inputs is None:
        inputs, settings = split_options(options, Inputs, CertifySettings)
    ctx = run_dir if isinstance(run_dir, Context) else Context(Path(run_dir))
    name, shape = ctx.planned_inputs(inputs.data, inputs.input_shape, need=NEED)
    return settings.record(inputs, name, shape)


def pending_certify(
    runs_dir: str | os.PathLike[str], settings: CertifySettings, inputs: Inputs
) -> list[Context]:
    """The finished runs under `runs_dir` without a certify record for these settings."""
    plan = lambda ctx: [(None, planned_settings(ctx, settings, inputs))]  # noqa: E731
    return [ctx for ctx, _ in pending(runs_dir, "certify", plan)]


def runs_to_certify(runs_dir: str | os.PathLike[str], **options: Any) -> list[Path]:
    """The finished runs under `runs_dir` without a certify record for these settings
    (options: fields of `Inputs` and `CertifySettings`)."""
    inputs, settings = split_options(options, Inputs, CertifySettings)
    return [ctx.path for ctx in pending_certify(runs_dir, settings, inputs)]


@dataclass
class _Data:
    """What certify runs on: data tensors (None without data), their shape and dataset."""

    ds_name: str | None
    ds_dict: dict[str, Any] | None
    images: torch.Tensor | None
    labels: torch.Tensor | None
    masks: torch.Tensor | None
    shape: tuple[int, ...]
    num_mask: int | None


def _data(model: torch.nn.Module, ctx: Context, inputs: Inputs) -> _Data:
    cfg, meta, input_shape = model.config, ctx.read_meta(), inputs.input_shape
    name = dataset_name(inputs.data, meta)
    shape = tuple(input_shape) if input_shape is not None else tuple(cfg.input_size)
    inp = _Data(name, None, None, None, None, shape, cfg.num_mask_classes)
    if name is None:
        if input_shape is None and meta is None:
            if not cfg.arch.startswith("pt2"):
                raise RlipError(
                    f"{ctx.path.name} is not a zoo model: without data it needs --input-shape C,H,W"
                )
            log.info("no data: using the exported program's input size %s", shape)
        return inp
    ds = ctx.test_set(name, inputs.root)
    check_data(cfg, ds.info, inputs.root, meta, inputs.other_data)
    inp.ds_dict = ds.info.to_dict()
    inp.images, inp.labels, inp.masks = ds.take(inputs.n).tensors()
    if tuple(inp.images.shape[1:]) != shape:
        if input_shape is not None:
            raise RlipError(
                f"--input-shape {','.join(map(str, shape))} does not match the data's "
                f"{','.join(map(str, inp.images.shape[1:]))}"
            )
        inp.shape = tuple(inp.images.shape[1:])
    if inp.num_mask is None and ds.info.num_mask_classes is not None and cfg.task != "classification":
        inp.num_mask = ds.info.num_mask_classes
    return inp


def certify_run(
    model_path: str | os.PathLike[str] | Context,
    settings: CertifySettings | None = None,
    inputs: Inputs | None = None,
    *,
    layers: bool = False,
    write: bool = True,
    progress: ProgressFn | None = None,
    arch: str | None = None,
    **options: Any,
) -> CertifyRecord:
    """Certify the model at `model_path` (run folder, .pt/.pth or .pt2 file, or its Context) and
    return its record.

    settings / inputs: what to compute and on what (`CertifySettings`, `base.Inputs`); or, in their
    place, their fields as keywords (data: a dataset name, "none" for `min(n, 64)` random inputs,
    None for the model's own; n: test points; input_shape (C, H, W): needed for foreign models
    without data; target / eps / seed / steps / mode / lower_budget_s: as `certify`; other_data:
    allow data other than the run's own). layers: also record the per-layer bounds. With `write`, a
    run folder gets the record in `results/` (a model file gets none). progress: see
    evaluations.steps. arch: the architecture of a bare state_dict (.pt/.pth/.safetensors): a
    registered name or `torchvision:NAME`, built at `input_shape`."""
    if settings is None or inputs is None:
        inputs, settings = split_options(options, Inputs, CertifySettings)
    elif options:
        raise TypeError(f"options {sorted(options)} given with settings")
    s, i = settings, inputs
    return evaluate(model_path, lambda ctx: _certify(ctx, s, i, layers, progress, arch), write)


def _certify(
    ctx: Context,
    settings: CertifySettings,
    inputs: Inputs,
    layers: bool,
    progress: ProgressFn | None,
    arch: str | None,
) -> CertifyRecord:
    """Load (model, data) through `ctx`, certify, and build the record (not written)."""
    from robustbench_lip.device import resolve_device

    t0 = time.perf_counter()
    dev = resolve_device(inputs.device)
    if inputs.input_shape is not None:
        check_input_memory(inputs.input_shape, min(inputs.n, 64))
    model = ctx.load_model(dev, arch, inputs.input_shape)
    inp = _data(model, ctx, inputs)
    try:
        cert = certify(
            model, inp.images, inp.labels, inp.masks, input_shape=inp.shape, target=settings.target,  # type: ignore[arg-type]
            eps=settings.eps, n_random=min(inputs.n, 64), steps=settings.steps, seed=inputs.seed,
            mode=settings.mode, num_mask_classes=inp.num_mask, device=dev, progress=progress,  # type: ignore[arg-type]
            lower_budget=settings.lower_budget_s,
        )  # fmt: skip
    except RlipError as e:
        raise RlipError(with_hint(str(e))) from None
    return CertifyRecord(
        model=model.config.to_dict(),
        dataset=inp.ds_dict,
        settings=settings.record(inputs, inp.ds_name, inp.shape),
        env=env_info(dev),
        wall_s=time.perf_counter() - t0,
        **cert.payload(layers=layers),
    )


__all__ = ["certify_run", "pending_certify", "planned_settings", "runs_to_certify"]

"""`certify_run`: certify a saved model (run folder or model file) and return its certify record.

Pipeline: load the model (never executing code), find the data (evaluation.inputs: `data`, else
the model's own dataset; "none": `n` uniform random points), certify (evaluation.certificates),
assemble a `CertifyRecord` and, for a run folder, write it to `RUN/results/certify-<key>.json`
(`key` = the settings key; records.store). The settings name exactly what was asked: data, n,
target, eps, seed, steps, mode and the input shape.

Randomized smoothing (`rlip certify --smoothing`): `certify_smoothed_run` / `runs_to_smooth`
(evaluation.smoothing_run) write their own records, `certificate: "smoothed"`, one per σ.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from robustbench_lip.attacks.eps import format_eps
from robustbench_lip.errors import RlipError
from robustbench_lip.evaluations.data_check import check_data
from robustbench_lip.evaluations.inputs import (
    check_input_memory,
    dataset_name,
    load_test_set,
    model_meta,
    planned_inputs,
)
from robustbench_lip.evaluations.lipschitz.certificate import (
    DEFAULT_EPS,
    DEFAULT_LOWER_BUDGET_S,
    TargetChoice,
    certify,
)
from robustbench_lip.evaluations.smoothing.run import certify_smoothed_run as certify_smoothed_run
from robustbench_lip.evaluations.smoothing.run import runs_to_smooth as runs_to_smooth
from robustbench_lip.evaluations.steps import ProgressFn
from robustbench_lip.modelio.hints import with_hint
from robustbench_lip.records import CertifyRecord, env_info, is_recorded, record_path, write_record

log = logging.getLogger(__name__)


def settings_for(
    data: str | None,
    n: int,
    target: str,
    eps: Sequence[float],
    seed: int,
    steps: int,
    mode: str,
    input_shape: Sequence[int],
    lower_budget: float | None = DEFAULT_LOWER_BUDGET_S,
    other_data: bool = False,
) -> dict[str, Any]:
    """The record settings of a certify run (their key names the record file); `other_data` (only
    when true): evaluated on data other than the run's own (evaluation.data_check)."""
    s = {
        "lower_budget_s": None if lower_budget is None else float(lower_budget),
        "data": data,
        "n": int(n),
        "target": target,
        "eps": [format_eps(e) for e in eps],
        "seed": int(seed),
        "steps": int(steps),
        "mode": mode,
        "input_shape": [int(s) for s in input_shape],
    }
    return {**s, "other_data": True} if other_data else s


def planned_settings(
    run_dir: str | os.PathLike[str],
    *,
    data: str | None = None,
    n: int = 256,
    input_shape: Sequence[int] | None = None,
    target: str = "both",
    eps: Sequence[float] = DEFAULT_EPS,
    seed: int = 0,
    steps: int = 10,
    mode: str = "fast",
    lower_budget: float | None = DEFAULT_LOWER_BUDGET_S,
    other_data: bool = False,
) -> dict[str, Any]:
    """The settings `certify_run` records for a run folder, from its config.json alone (no model
    or data loaded; the input shape is the model's, which is the data's for models trained here)."""
    name, shape = planned_inputs(run_dir, data, input_shape, need="cannot plan its certificate")
    return settings_for(name, n, target, eps, seed, steps, mode, shape, lower_budget, other_data)


def runs_to_certify(runs_dir: str | os.PathLike[str], **options: Any) -> list[Path]:
    """The finished runs under `runs_dir` without a certify record for these settings
    (options: those of `planned_settings`)."""
    from robustbench_lip.runs import finished_runs

    return [
        r for r in finished_runs(runs_dir) if not is_recorded(r, "certify", planned_settings(r, **options))
    ]


@dataclass
class _Inputs:
    """What certify runs on: data tensors (None without data), their shape and dataset."""

    ds_name: str | None
    ds_dict: dict[str, Any] | None
    images: torch.Tensor | None
    labels: torch.Tensor | None
    masks: torch.Tensor | None
    shape: tuple[int, ...]
    num_mask: int | None


def _inputs(
    model: torch.nn.Module,
    model_path: Path,
    meta: dict[str, Any] | None,
    data: str | None,
    root: str | os.PathLike[str] | None,
    n: int,
    input_shape: Sequence[int] | None,
    other_data: bool = False,
) -> _Inputs:
    cfg = model.config
    name = dataset_name(data, meta)
    shape = tuple(input_shape) if input_shape is not None else tuple(cfg.input_size)
    inp = _Inputs(name, None, None, None, None, shape, cfg.num_mask_classes)
    if name is None:
        if input_shape is None and meta is None:
            if not cfg.arch.startswith("pt2"):
                raise RlipError(
                    f"{model_path.name} is not a zoo model: without data it needs --input-shape C,H,W"
                )
            log.info("no data: using the exported program's input size %s", shape)
        return inp
    ds = load_test_set(name, root, meta)
    check_data(cfg, ds.info, root, meta, other_data)
    inp.ds_dict = ds.info.to_dict()
    inp.images, inp.labels, inp.masks = ds.take(n).tensors()
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
    model_path: str | os.PathLike[str],
    *,
    data: str | None = None,
    root: str | os.PathLike[str] | None = None,
    n: int = 256,
    input_shape: Sequence[int] | None = None,
    target: TargetChoice = "both",
    eps: Sequence[float] = DEFAULT_EPS,
    layers: bool = False,
    seed: int = 0,
    steps: int = 10,
    mode: str = "fast",
    device: str | torch.device = "auto",
    write: bool = True,
    progress: ProgressFn | None = None,
    lower_budget: float | None = DEFAULT_LOWER_BUDGET_S,
    other_data: bool = False,
    arch: str | None = None,
) -> CertifyRecord:
    """Certify the model at `model_path` (run folder, .pt/.pth or .pt2 file) and return its record.

    data: dataset name, "none" for `min(n, 64)` random inputs, None for the model's own; n: test
    points; input_shape: (C, H, W), needed for foreign models without data; target/eps/seed/
    steps/mode/lower_budget: as `certify`; layers: also record the per-layer bounds. With `write`, a run
    folder gets the record in `results/` (a model file gets none; see record_path). progress: see
    evaluation.steps. other_data: allow data other than the run's own (evaluation.data_check).
    arch: the architecture of a bare state_dict (.pt/.pth/.safetensors): a registered name or
    `torchvision:NAME` (class count read from the file), built at `input_shape`."""
    from robustbench_lip.device import resolve_device
    from robustbench_lip.modelio import load_model

    t0 = time.perf_counter()
    path = Path(model_path)
    if not path.exists():
        raise RlipError(f"no such model file or folder: {path}")
    dev = resolve_device(device)
    if input_shape is not None:
        check_input_memory(input_shape, min(n, 64))
    meta = model_meta(path)  # None: foreign files (.pt2, bare weights) have no config.json
    model = load_model(path, arch=arch, device=dev, input_size=tuple(input_shape) if input_shape else None)
    inp = _inputs(model, path, meta, data, root, n, input_shape, other_data)
    try:
        cert = certify(
            model, inp.images, inp.labels, inp.masks, input_shape=inp.shape, target=target, eps=eps,
            n_random=min(n, 64), steps=steps, seed=seed, mode=mode,  # type: ignore[arg-type]
            num_mask_classes=inp.num_mask, device=dev, progress=progress, lower_budget=lower_budget,
        )  # fmt: skip
    except RlipError as e:
        raise RlipError(with_hint(str(e))) from None
    rec = CertifyRecord(
        model=model.config.to_dict(),
        dataset=inp.ds_dict,
        settings=settings_for(
            inp.ds_name, n, target, eps, seed, steps, mode, inp.shape, lower_budget, other_data
        ),
        env=env_info(dev),
        wall_s=time.perf_counter() - t0,
        **cert.payload(layers=layers),
    )
    if write and path.is_dir():
        write_record(record_path(path, "certify", rec.settings), rec)
    return rec

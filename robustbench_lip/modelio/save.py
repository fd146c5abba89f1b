"""Writing models: a model directory (safetensors + config.json), a single `.pt` file, a `.pt2` export."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from robustbench_lip import __version__
from robustbench_lip.config import DatasetInfo, ModelConfig
from robustbench_lip.device import set_eval
from robustbench_lip.errors import RlipError
from robustbench_lip.io import atomic_write_bytes, atomic_write_json
from robustbench_lip.modelio.files import CONFIG_FILE, FORMAT, FORMAT_VERSION, WEIGHTS_FILE
from robustbench_lip.modelio.fingerprint import FINGERPRINT_KIND, weights_fingerprint


def _config_of(model: nn.Module) -> ModelConfig:
    cfg = getattr(model, "config", None)
    if not isinstance(cfg, ModelConfig):
        raise RlipError(f"{type(model).__name__} has no ModelConfig (.config); build it with create_model")
    return cfg


def _state_for_saving(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True).contiguous() for k, v in model.state_dict().items()}


def save_model(
    model: nn.Module,
    directory: str | os.PathLike[str],
    dataset: DatasetInfo | dict[str, Any] | None = None,
    training: dict[str, Any] | None = None,
) -> Path:
    """Write DIR/model.safetensors then DIR/config.json (each atomically); returns DIR.

    `dataset` and `training` are stored as given (DatasetInfo → dict). Exported (.pt2) models
    cannot be saved this way (their code is the graph in the .pt2 file).
    """
    from safetensors.torch import save as st_save

    cfg = _config_of(model)
    if cfg.arch == "pt2":
        raise RlipError("an exported (.pt2) model cannot be saved as a model directory; keep its .pt2 file")
    directory = Path(directory)
    state = _state_for_saving(model)
    data = st_save(state, metadata={"format": "pt", "rlip_arch": cfg.arch})
    if isinstance(dataset, DatasetInfo):
        dataset = dataset.to_dict()
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model": cfg.to_dict(),
        "dataset": dataset,
        "training": training,
        "rlip": __version__,
        "torch": torch.__version__,
        "weights_sha256": weights_fingerprint(state),
        "weights_sha256_of": FINGERPRINT_KIND,
    }
    atomic_write_bytes(directory / WEIGHTS_FILE, data)
    atomic_write_json(directory / CONFIG_FILE, meta)
    return directory


def save_pt(model: nn.Module, path: str | os.PathLike[str]) -> Path:
    """Write a single-file checkpoint {"config": ModelConfig dict, "state_dict"} atomically (torch.save)."""
    cfg = _config_of(model)
    if cfg.arch == "pt2":
        raise RlipError("an exported (.pt2) model cannot be re-saved as .pt; keep its .pt2 file")
    buf = io.BytesIO()
    torch.save({"config": cfg.to_dict(), "state_dict": _state_for_saving(model)}, buf)
    return atomic_write_bytes(path, buf.getvalue())


def export_pt2(
    model: nn.Module, path: str | os.PathLike[str], batch_size: int = 2, dynamic_batch: bool = True
) -> Path:
    """torch.export the model (eval mode) on a random example of its input size and save the archive.

    dynamic_batch: the batch dimension stays symbolic (any N ≥ 1 works when loaded).
    """
    cfg = _config_of(model)
    device = next(iter(model.parameters())).device
    gen = torch.Generator(device="cpu").manual_seed(0)
    example = torch.rand((batch_size, *cfg.input_size), generator=gen).to(device)
    was_training = model.training
    set_eval(model)
    try:
        dyn = {"x": {0: torch.export.Dim("batch", min=1)}} if dynamic_batch else None
        try:
            ep = torch.export.export(model, (example,), dynamic_shapes=dyn)
        except Exception as e:  # export failures are diverse (unsupported ops, guards)
            raise RlipError(f"torch.export failed for {cfg.arch}: {str(e).strip().splitlines()[0]}") from None
    finally:
        model.train(was_training)
    buf = io.BytesIO()
    torch.export.save(ep, buf)
    return atomic_write_bytes(path, buf.getvalue())

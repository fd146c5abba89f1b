"""Model zoo: registry, mResNet-18 (CAM segmentation), U-Nets, and task-independent helpers.

registry.py: `register_model` stores each factory, its family and task in `MODELS` (a
robustbench_lip.registry.Registry); `create_model`, `list_models`, `model_family`, `arch_task` read it.

Helpers work on any model with a `.config: ModelConfig` (ours, or foreign ones wrapped by
`robustbench_lip.modelio.load_model`):

- `can_segment(model)`: it has a mask label space (`config.num_mask_classes`) and either its own
  `mask_logits` method or a segmentation forward (logits (N, K, H, W)).
- `mask_logits(model, x)` (N, M, H, W), differentiable; `predict_mask(model, x)` (N, H, W) int64,
  0 = background.
- `predict_labels(model, x, offset)` (N,) image labels: classification → argmax of the logits; a
  segmenter → derived from its mask by the one convention of `robustbench_lip.labels` (offset =
  mask values − image classes of the dataset; `labels.default_offset` when not given).

May import: errors, config, labels, registry, tasks and torch — never data, training, lipschitz,
evaluation, records or report.
"""

from __future__ import annotations

import torch
from torch import nn

from robustbench_lip.config import ModelConfig
from robustbench_lip.errors import RlipError
from robustbench_lip.labels import default_offset, labels_from_masks
from robustbench_lip.models import constrained, mresnet, sllnet, unet
from robustbench_lip.models.constrained import LipResNet, LipUNet
from robustbench_lip.models.mresnet import MResNet
from robustbench_lip.models.registry import (
    RlipModel,
    arch_task,
    create_model,
    create_model_for,
    list_models,
    model_family,
    model_from_config,
    register_model,
)
from robustbench_lip.models.unet import UNet, UNetI2I

__all__ = [
    "LipResNet",
    "LipUNet",
    "MResNet",
    "RlipModel",
    "UNet",
    "UNetI2I",
    "arch_task",
    "can_segment",
    "constrained",
    "count_params",
    "create_model",
    "create_model_for",
    "list_models",
    "mask_logits",
    "model_family",
    "model_from_config",
    "mresnet",
    "output_shape",
    "predict_labels",
    "predict_mask",
    "register_model",
    "sllnet",
    "unet",
]


def _config(model: nn.Module) -> ModelConfig:
    cfg = getattr(model, "config", None)
    if cfg is None:
        raise RlipError(f"{type(model).__name__} has no .config; build it with create_model or load_model")
    return cfg


def count_params(model: nn.Module) -> int:
    """Number of parameters (trainable or not; buffers excluded)."""
    return sum(p.numel() for p in model.parameters())


def output_shape(config: ModelConfig) -> tuple[int, ...]:
    """Declared output shape without the batch dim: (K,), (K, H, W) or the input's (C, H, W)."""
    c, h, w = config.input_size
    if config.task == "classification":
        return (config.num_classes,)
    if config.task == "segmentation":
        return (config.num_classes, h, w)
    return (c, h, w)


def can_segment(model: nn.Module) -> bool:
    """Whether `mask_logits` / `predict_mask` work for this model."""
    cfg = getattr(model, "config", None)
    if cfg is None or cfg.num_mask_classes is None:
        return False
    return callable(getattr(model, "mask_logits", None)) or cfg.task == "segmentation"


def mask_logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Differentiable mask scores (N, M, H, W), M = config.num_mask_classes; argmax = predict_mask."""
    if not can_segment(model):
        raise RlipError(f"model {_config(model).arch} does not produce segmentation masks")
    method = getattr(model, "mask_logits", None)
    return method(x) if callable(method) else model(x)


def predict_mask(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Label map (N, H, W) int64 in the dataset's mask label space (0 = background)."""
    if not can_segment(model):
        raise RlipError(f"model {_config(model).arch} does not produce segmentation masks")
    method = getattr(model, "predict_mask", None)
    if callable(method):
        return method(x)
    with torch.no_grad():
        return mask_logits(model, x).argmax(dim=1)


def predict_labels(model: nn.Module, x: torch.Tensor, offset: int | None = None) -> torch.Tensor:
    """Image labels (N,) int64 in the dataset's image label space (rules in the module docstring);
    `offset` (0 or 1, `labels.label_offset` of the dataset) matters for segmenters only."""
    cfg = _config(model)
    with torch.no_grad():
        if cfg.task == "classification":
            return model(x).argmax(dim=1)
        if not can_segment(model):
            raise RlipError(f"model {cfg.arch} ({cfg.task}) predicts neither image labels nor masks")
        scores = mask_logits(model, x)
        m = scores.shape[1]
        off = default_offset(m) if offset is None else int(offset)
        return labels_from_masks(scores.argmax(dim=1), m, off, scores[:, 1:].mean(dim=(2, 3)))

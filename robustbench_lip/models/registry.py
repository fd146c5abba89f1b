"""Model registry (timm style) and the base class every rlip model derives from.

Factories are small functions decorated with `@register_model`; `create_model(name, **overrides)`
calls one. Every model carries a frozen `ModelConfig` as `model.config` holding everything needed to
rebuild it with no code from a file: `model_from_config(model.config)` gives the same architecture.

Overrides common to all architectures: `in_channels`, `num_classes`, `image_size` (H, W) or
`input_size` (C, H, W), `mean`, `std` (per channel; normalisation happens inside the model, so
inputs are always images in [0, 1]), `num_mask_classes`. Architecture-specific overrides (width,
norm, depth, ...) are stored in `config.kwargs`.
"""

from __future__ import annotations

import difflib
import fnmatch
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
from torch import nn

from robustbench_lip.config import DatasetInfo, ModelConfig
from robustbench_lip.errors import RlipError
from robustbench_lip.registry import Registry

#: model families: trained with the Lipschitz penalty (any λ ≥ 0), or 1-Lipschitz by construction
FAMILIES: tuple[str, ...] = ("penalty", "constrained")

F = TypeVar("F", bound=Callable[..., nn.Module])

COMMON_OPTIONS = ("in_channels", "num_classes", "image_size", "input_size", "mean", "std", "num_mask_classes")


@dataclass
class ModelEntry:
    """A registered architecture: its factory, family, and task (None until first needed: then read
    from a default-built model)."""

    factory: Callable[..., nn.Module]
    family: str
    task: str | None = None


MODELS: Registry[ModelEntry] = Registry("model")


def register_model(
    fn: F | None = None,
    *,
    name: str | None = None,
    task: str | None = None,
    family: str = "penalty",
    replace: bool = False,
) -> Any:
    """Decorator registering a model factory under its function name (or `name`).

    `task` is what the factory's models compute ("classification" | "segmentation" | "image2image");
    when omitted it is read from a default-built model the first time it is needed. `family`: one of
    FAMILIES — "constrained" for models whose Lipschitz constant is bounded by construction. A name
    registered twice is an error unless `replace`.
    """
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {', '.join(FAMILIES)}, got {family!r}")

    def deco(f: F) -> F:
        MODELS.register(name or f.__name__, ModelEntry(f, family, task), replace=replace)
        return f

    return deco(fn) if fn is not None else deco


def list_models(pattern: str | None = None) -> list[str]:
    """Registered model names, sorted; `pattern` filters with fnmatch (e.g. "*tiny*")."""
    names = sorted(MODELS.names())
    if pattern:
        names = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
    return names


def model_family(name: str) -> str | None:
    """The family of a registered architecture ("penalty" | "constrained"); None when not registered
    (foreign models: `pt2`, `torchvision:…`)."""
    entry = MODELS.find(name)
    return entry.family if entry is not None else None


def _unknown(name: str) -> RlipError:
    close = difflib.get_close_matches(name, MODELS.names(), n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    return RlipError(f"unknown model {name!r}; {hint}available: {', '.join(list_models())}")


def arch_task(name: str) -> str:
    """The task of a registered architecture (what its forward returns); the task of a model
    instance is `robustbench_lip.tasks.task_of`."""
    entry = MODELS.find(name)
    if entry is None:
        raise _unknown(name)
    if entry.task is None:
        entry.task = create_model(name).config.task
    return entry.task


def create_model(name: str, **overrides: Any) -> nn.Module:
    """Build the registered model `name` with keyword `overrides`; the model has `.config`.

    An unknown name or option is an RlipError listing the valid ones.
    """
    entry = MODELS.find(name)
    if entry is None:
        raise _unknown(str(name))
    model = entry.factory(**overrides)
    if not isinstance(getattr(model, "config", None), ModelConfig):  # pragma: no cover - factory bug
        raise TypeError(f"factory {name!r} returned a model without a ModelConfig")
    return model


def create_model_for(name: str, info: DatasetInfo, **overrides: Any) -> nn.Module:
    """Build `name` for a dataset: channels, image size, classes, mean/std (and masks) from `info`.

    classification: num_classes = info.num_classes; masks follow the dataset's mask labels when it
    has them (num_mask_classes = K + 1 with label k + 1 for class k, or K when class 0 means
    "nothing"), else K + 1. segmentation: the outputs are the dataset's mask classes (needs masks).
    image2image: output = input shape; a 1-channel model on a 2-class mask dataset segments (z > 0).
    Explicit `overrides` win.
    """
    task = arch_task(name)
    opts: dict[str, Any] = {
        "in_channels": info.in_channels,
        "image_size": tuple(info.image_size),
        "mean": tuple(info.mean) if info.mean else (),
        "std": tuple(info.std) if info.std else (),
    }
    if task == "classification":
        opts["num_classes"] = info.num_classes
        m = info.num_mask_classes if info.has_masks else None
        if m is not None and m in (info.num_classes, info.num_classes + 1):
            opts["num_mask_classes"] = m
        else:
            opts["num_mask_classes"] = info.num_classes + 1
    elif task == "segmentation":
        if not info.has_masks or not info.num_mask_classes:
            raise RlipError(
                f"{name} is a segmentation model but dataset {info.name!r} has no masks; "
                "use a classifier (e.g. mresnet18_w16) or a dataset with masks"
            )
        opts["num_classes"] = info.num_mask_classes
    else:  # image2image
        opts["num_classes"] = info.num_classes
        binary = info.has_masks and info.num_mask_classes == 2 and info.in_channels == 1
        opts["num_mask_classes"] = 2 if binary else None
    opts.update(overrides)
    return create_model(name, **opts)


def model_from_config(config: ModelConfig) -> nn.Module:
    """Rebuild a registered architecture from its ModelConfig (random weights)."""
    if config.arch not in MODELS:
        raise _unknown(config.arch)
    return create_model(
        config.arch,
        in_channels=config.in_channels,
        num_classes=config.num_classes,
        image_size=tuple(config.input_size[1:]),
        mean=tuple(config.mean),
        std=tuple(config.std),
        num_mask_classes=config.num_mask_classes,
        **dict(config.kwargs),
    )


def build(cls: type[RlipModel], arch: str, defaults: dict[str, Any], overrides: dict[str, Any]) -> nn.Module:
    """Instantiate `cls` for registry name `arch` from factory defaults + user overrides.

    Unknown options raise RlipError naming the valid ones; `input_size` (C, H, W) is an alias of
    `in_channels` + `image_size`.
    """
    params = inspect.signature(cls.__init__).parameters
    valid = sorted({p for p in params if p not in ("self", "arch")} | {"input_size"})
    bad = sorted(set(overrides) - set(valid))
    if bad:
        raise RlipError(f"unknown option(s) {', '.join(bad)} for model {arch}; valid: {', '.join(valid)}")
    kw = {**defaults, **overrides}
    if "input_size" in kw:
        size = tuple(kw.pop("input_size"))
        if len(size) != 3:
            raise RlipError(f"input_size must be (C, H, W), got {size}")
        if "in_channels" in overrides and int(overrides["in_channels"]) != size[0]:
            raise RlipError(f"in_channels={overrides['in_channels']} contradicts input_size={size}")
        kw["in_channels"], kw["image_size"] = size[0], size[1:]
    return cls(arch=arch, **kw)


def _as_size(image_size: Any) -> tuple[int, int]:
    try:
        size = tuple(int(v) for v in image_size)
    except (TypeError, ValueError):
        raise RlipError(f"image_size must be (H, W), got {image_size!r}") from None
    if len(size) != 2 or min(size) < 1:
        raise RlipError(f"image_size must be two positive integers (H, W), got {image_size!r}")
    return size  # type: ignore[return-value]


class RlipModel(nn.Module):
    """Base class: holds `config`, per-channel normalisation buffers and an input-shape check.

    Subclasses build their `ModelConfig` with `make_config` and call `normalize(x)` first in forward.
    """

    config: ModelConfig

    def __init__(
        self,
        *,
        arch: str,
        task: str,
        in_channels: int,
        num_classes: int,
        image_size: Sequence[int],
        mean: Sequence[float],
        std: Sequence[float],
        num_mask_classes: int | None,
        reflection_defined: bool,
        kwargs: dict[str, Any],
    ) -> None:
        super().__init__()
        in_channels, num_classes = int(in_channels), int(num_classes)
        if in_channels < 1 or num_classes < 1:
            raise RlipError(f"{arch}: in_channels and num_classes must be ≥ 1")
        h, w = _as_size(image_size)
        mean_t = tuple(float(v) for v in mean) if mean else ()
        std_t = tuple(float(v) for v in std) if std else ()
        for label, vals in (("mean", mean_t), ("std", std_t)):
            if vals and len(vals) != in_channels:
                raise RlipError(f"{arch}: {label} has {len(vals)} values for {in_channels} input channel(s)")
        if any(not s > 0 for s in std_t):
            raise RlipError(f"{arch}: std must be positive, got {std_t}")
        self.config = ModelConfig(
            arch=arch,
            task=task,  # type: ignore[arg-type]
            in_channels=in_channels,
            num_classes=num_classes,
            input_size=(in_channels, h, w),
            kwargs=dict(kwargs),
            mean=mean_t,
            std=std_t,
            num_mask_classes=None if num_mask_classes is None else int(num_mask_classes),
            reflection_defined=reflection_defined,
        )
        shape = (1, in_channels, 1, 1)
        self.register_buffer("input_mean", torch.tensor(mean_t or (0.0,) * in_channels).view(shape))
        self.register_buffer("input_std", torch.tensor(std_t or (1.0,) * in_channels).view(shape))

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """Check x (N, C, H, W) in [0, 1] pixel units and return (x − mean) / std."""
        self.check_input(x)
        return (x - self.input_mean) / self.input_std

    def check_input(self, x: torch.Tensor) -> None:
        """Raise RlipError when x is not (N, C, H, W) with the model's C (skipped under fx tracing)."""
        if torch.fx._symbolic_trace.is_fx_symbolic_tracing():
            return
        c = self.config.in_channels
        if x.dim() != 4 or x.shape[1] != c:
            raise RlipError(
                f"{self.config.arch} expects images of shape (N, {c}, H, W), got {tuple(x.shape)}"
            )

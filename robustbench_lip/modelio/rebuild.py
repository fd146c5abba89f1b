"""Rebuild a model from weights: a ModelConfig + state_dict, or a bare state_dict + an arch name."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from robustbench_lip.config import ModelConfig
from robustbench_lip.device import set_eval
from robustbench_lip.errors import RlipError
from robustbench_lip.modelio.files import DEFAULT_FOREIGN_INPUT, TORCHVISION_PREFIX
from robustbench_lip.modelio.foreign import (
    ForeignModel,
    _load_torchvision,
    _torchvision_net,
    build_from_config,
    infer_config,
)
from robustbench_lip.modelio.statedict import _fit_state_dict, _strip_prefix
from robustbench_lip.models.registry import arch_task, create_model, list_models


def _build_and_load(config: ModelConfig, state: Mapping[str, Any], source: str) -> nn.Module:
    """build_from_config + strict state_dict load (torchvision nets skip their random init)."""
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise RlipError(f"{source}: the state_dict must map names to tensors")
    if config.arch.startswith(TORCHVISION_PREFIX):
        net_state = {k[4:]: v for k, v in state.items() if k.startswith("net.")}
        extra = sorted(k for k in state if not k.startswith("net.") and k not in ("input_mean", "input_std"))
        if extra:
            raise RlipError(f"{source} does not fit {config.arch}: unexpected {', '.join(extra[:3])}")
        net = _load_torchvision(
            config.arch[len(TORCHVISION_PREFIX) :], dict(config.kwargs), net_state, source
        )
        model = ForeignModel(net, config)
    else:
        model = build_from_config(config)
    _fit_state_dict(model, state, source)
    return model


def _from_bare_state(
    state: Mapping[str, torch.Tensor],
    arch: str | None,
    input_size: Sequence[int] | None,
    source: str,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> nn.Module:
    """Build `arch` to fit a bare state_dict and load it."""
    if not arch:
        raise RlipError(
            f"{source} holds a bare state_dict with no config; pass arch (--arch) naming a registered "
            f"model ({', '.join(list_models())}) or torchvision:NAME (e.g. torchvision:resnet18)"
        )
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise RlipError(f"{source}: the state_dict must map names to tensors")
    state = _strip_prefix(_strip_prefix(state, "module."), "_orig_mod.")
    if arch.startswith(TORCHVISION_PREFIX):
        return _bare_torchvision(state, arch, input_size, source, mean, std)
    return _bare_registered(state, arch, input_size, source, mean, std)


def _bare_torchvision(
    state: Mapping[str, torch.Tensor],
    arch: str,
    input_size: Sequence[int] | None,
    source: str,
    mean: Sequence[float] | None,
    std: Sequence[float] | None,
) -> nn.Module:
    """A bare state_dict of torchvision `arch` (= torchvision:NAME), its class count read from the file."""
    name = arch[len(TORCHVISION_PREFIX) :]
    state = _strip_prefix(state, "net.")
    state = {k: v for k, v in state.items() if k not in ("input_mean", "input_std")}
    kwargs: dict[str, Any] = {}
    probe = _torchvision_net(name, kwargs, meta=True).state_dict()
    # the classifier's class count is the last weight's first dimension in the file
    last = [k for k, v in probe.items() if k.endswith("weight") and v.dim() >= 2]
    if last and last[-1] in state and int(state[last[-1]].shape[0]) != probe[last[-1]].shape[0]:
        kwargs = {"num_classes": int(state[last[-1]].shape[0])}
    net = _load_torchvision(name, kwargs, state, source)
    set_eval(net)
    cfg = infer_config(
        net, arch, tuple(input_size or DEFAULT_FOREIGN_INPUT), kwargs, tuple(mean or ()), tuple(std or ())
    )
    return ForeignModel(net, cfg)


def _bare_registered(
    state: Mapping[str, torch.Tensor],
    arch: str,
    input_size: Sequence[int] | None,
    source: str,
    mean: Sequence[float] | None,
    std: Sequence[float] | None,
) -> nn.Module:
    """A bare state_dict of registered model `arch`; normalisation, channels and classes from the file."""
    task = arch_task(arch)  # raises the "unknown model" error
    overrides: dict[str, Any] = {}
    state = dict(state)
    if "input_mean" in state and "input_std" in state and state["input_mean"].dim() == 4:
        overrides["in_channels"] = int(state["input_mean"].shape[1])
        m, s = state["input_mean"].flatten().tolist(), state["input_std"].flatten().tolist()
        if any(v != 0 for v in m) or any(v != 1 for v in s):
            overrides["mean"], overrides["std"] = tuple(m), tuple(s)
    if mean is not None or std is not None:  # explicit normalisation replaces the file's buffers
        c = int(
            overrides.get(
                "in_channels", input_size[0] if input_size else create_model(arch).config.in_channels
            )
        )
        overrides["mean"] = tuple(mean) if mean is not None else (0.0,) * c
        overrides["std"] = tuple(std) if std is not None else (1.0,) * c
        state.pop("input_mean", None)
        state.pop("input_std", None)
    if input_size is not None:
        overrides["input_size"] = tuple(input_size)
        overrides.pop("in_channels", None)
    if "head.weight" in state and task != "image2image":
        overrides["num_classes"] = int(state["head.weight"].shape[0])
    model = create_model(arch, **overrides)
    if "input_mean" not in state:  # normalisation from the config (explicit or default)
        state["input_mean"], state["input_std"] = model.input_mean, model.input_std
    _fit_state_dict(model, state, source)
    return model

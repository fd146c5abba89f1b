"""Loading models: model directories, `.pt`/`.pth`/`.safetensors` weights, `.pt2` archives — no code
from the file is ever run (see the `robustbench_lip.modelio` docstring)."""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from robustbench_lip.config import ModelConfig
from robustbench_lip.device import preserved_rng, resolve_device, set_eval
from robustbench_lip.errors import RlipError
from robustbench_lip.io import read_json
from robustbench_lip.modelio.files import (
    _REFUSE_HINT,
    CONFIG_FILE,
    FORMAT,
    FORMAT_VERSION,
    WEIGHTS_FILE,
    _load_safetensors,
    _read_bytes,
    _torch_load,
)
from robustbench_lip.modelio.fingerprint import matches
from robustbench_lip.modelio.pt2 import _load_pt2
from robustbench_lip.modelio.rebuild import _build_and_load, _from_bare_state

log = logging.getLogger(__name__)


def _model_dir(path: Path) -> Path | None:
    """The model directory `path` designates (the dir, its config.json or model.safetensors), if any."""
    if path.is_dir():
        return path
    if path.name in (CONFIG_FILE, WEIGHTS_FILE) and (path.parent / CONFIG_FILE).is_file():
        return path.parent
    return None


def read_model_meta(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The config.json content of a model directory (no weights loaded).

    A `.pt`/`.pth` file with a config gives the same keys (it is read with weights_only=True;
    dataset/training are null, versions and sha256 unknown).
    """
    path = Path(path)
    d = _model_dir(path)
    if d is None:
        if not path.exists():
            raise RlipError(f"no such model file or folder: {path}")
        if path.suffix == ".pt2" or path.suffix == ".safetensors":
            raise RlipError(f"{path} carries no rlip metadata; load it with load_model")
        obj = _torch_load(path)
        if not (isinstance(obj, Mapping) and isinstance(obj.get("config"), Mapping)):
            raise RlipError(f"{path} holds no model config (a bare state_dict?); load it with --arch")
        ModelConfig.from_dict(dict(obj["config"]))
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "model": dict(obj["config"]),
            "dataset": None,
        }
    cfg_path = d / CONFIG_FILE
    if not cfg_path.is_file():
        raise RlipError(f"{d} is not a model directory: {CONFIG_FILE} is missing")
    meta = read_json(cfg_path)
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise RlipError(f"{cfg_path} is not an rlip model config (format {FORMAT!r} expected)")
    if int(meta.get("format_version", 0)) > FORMAT_VERSION:
        raise RlipError(
            f"{cfg_path} has format_version {meta.get('format_version')}; upgrade rlip to read it"
        )
    if not isinstance(meta.get("model"), dict):
        raise RlipError(f"{cfg_path} has no 'model' object")
    return meta


def _with_input_size(cfg: ModelConfig, input_size: Sequence[int] | None) -> ModelConfig:
    if input_size is None:
        return cfg
    size = tuple(int(v) for v in input_size)
    if len(size) != 3 or size[0] != cfg.in_channels:
        raise RlipError(
            f"--input-shape (input_size) must be {cfg.in_channels},H,W for this model, "
            f"got {tuple(input_size)}"
        )
    return dataclasses.replace(cfg, input_size=size)


def _load_dir(
    d: Path, arch: str | None, input_size: Sequence[int] | None, meta: dict[str, Any] | None = None
) -> nn.Module:
    meta = meta if meta is not None else read_model_meta(d)
    cfg = _with_input_size(ModelConfig.from_dict(meta["model"]), input_size)
    if arch and arch != cfg.arch:
        raise RlipError(f"{d} holds a {cfg.arch} model, not {arch}; drop --arch")
    wpath = d / WEIGHTS_FILE
    data = _read_bytes(wpath)
    expected = meta.get("weights_sha256")
    try:
        state = _load_safetensors(data, str(wpath))
    except RlipError:
        if not expected:
            raise
        state = None  # unreadable: reported as a mismatch below
    if expected and not matches(expected, data, state):
        raise RlipError(
            f"{wpath} does not match the sha256 in {CONFIG_FILE} (changed or truncated); re-save the model"
        )
    if state is None:
        state = _load_safetensors(data, str(wpath))  # raises its own error
    return _build_and_load(cfg, state, str(wpath))


def load_model(
    path: str | os.PathLike[str],
    arch: str | None = None,
    device: str | torch.device = "cpu",
    input_size: Sequence[int] | None = None,
    *,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    meta: dict[str, Any] | None = None,
) -> nn.Module:
    """Load a model in eval mode on `device`, with `.config` set; never runs code from the file.

    path: a model directory (or its config.json / model.safetensors); a `.pt`/`.pth` file with
    {"config", "state_dict"} or a bare state_dict (+ `arch`); a `.safetensors` state_dict (+ `arch`);
    a `.pt2` torch.export archive. arch: a registered name or `torchvision:NAME` for bare weights.
    input_size (C, H, W): overrides the recorded input size (foreign models: the probe size; default
    3×224×224 for torchvision). mean/std: normalisation for bare weights (foreign models: none by
    default — torchvision weights trained on ImageNet expect its mean/std). The global RNGs are
    left as they were (building a model before loading its weights draws from them). meta: the
    model directory's config.json content when the caller has already read it (not read again).
    """
    with preserved_rng():
        return _load_model(Path(path), arch, resolve_device(device), input_size, mean, std, meta)


def _load_model(
    p: Path,
    arch: str | None,
    dev: torch.device,
    input_size: Sequence[int] | None,
    mean: Sequence[float] | None,
    std: Sequence[float] | None,
    meta: dict[str, Any] | None = None,
) -> nn.Module:
    """`load_model` without the RNG guard."""
    if not p.exists():
        raise RlipError(f"no such model file or folder: {p}")
    d = _model_dir(p)
    if d is not None and not (p.suffix == ".safetensors" and arch):
        model = _load_dir(d, arch, input_size, meta)
    elif p.suffix == ".pt2":
        model = _load_pt2(p, input_size)
    elif p.suffix == ".safetensors":
        state = _load_safetensors(_read_bytes(p), str(p))
        model = _from_bare_state(state, arch, input_size, str(p), mean, std)
    else:
        obj = _torch_load(p)
        if isinstance(obj, Mapping) and isinstance(obj.get("config"), Mapping) and "state_dict" in obj:
            cfg = _with_input_size(ModelConfig.from_dict(dict(obj["config"])), input_size)
            if arch and arch != cfg.arch:
                raise RlipError(f"{p} holds a {cfg.arch} model, not {arch}; drop --arch")
            model = _build_and_load(cfg, obj["state_dict"], str(p))
        elif isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
            model = _from_bare_state(obj["state_dict"], arch, input_size, str(p), mean, std)
        elif isinstance(obj, Mapping) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            model = _from_bare_state(obj, arch, input_size, str(p), mean, std)
        else:
            raise RlipError(
                f"{p} holds neither {{'config', 'state_dict'}} nor a state_dict of tensors "
                f"(got {type(obj).__name__}); {_REFUSE_HINT}"
            )
    model = model.to(dev)
    set_eval(model)
    log.debug("loaded %s (%s) from %s", model.config.arch, model.config.task, p)
    return model

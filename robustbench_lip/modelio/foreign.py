"""Foreign models (torchvision builders, torch.export programs): the ForeignModel wrapper and the
ModelConfig inferred from one forward pass (rules in the `robustbench_lip.modelio` docstring)."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from robustbench_lip.config import ModelConfig
from robustbench_lip.errors import RlipError
from robustbench_lip.modelio.files import TORCHVISION_PREFIX
from robustbench_lip.modelio.statedict import _fit_state_dict
from robustbench_lip.models.registry import model_from_config


class ForeignModel(nn.Module):
    """A model from outside the registry (torchvision builder or torch.export program) with a config.

    forward(x (N, C, H, W) in [0, 1]) = net((x − mean) / std); a dict output gives its "out" entry.
    The wrapper adds nothing to the graph where it can: no normalisation when config.mean and std
    are empty (or all 0 and 1), a scalar division when every channel has the same std — so the
    bounder keeps the identity coefficient α of net (R = 2A − I). `batch` (for exported programs
    traced with a fixed batch size B): inputs are run in chunks of B, the last one padded with
    copies of its last sample (samples are independent in eval mode; the padding is dropped).
    """

    def __init__(self, net: nn.Module, config: ModelConfig, batch: int | None = None) -> None:
        super().__init__()
        self.net = net
        self.config = config
        self.batch = batch
        c = config.in_channels
        shape = (1, c, 1, 1)
        self.register_buffer("input_mean", torch.tensor(config.mean or (0.0,) * c).view(shape))
        self.register_buffer("input_std", torch.tensor(config.std or (1.0,) * c).view(shape))
        mean, std = tuple(config.mean or ()), tuple(config.std or ())
        self._shift = any(float(m) != 0.0 for m in mean)
        same = len(set(float(s) for s in std)) <= 1
        self._scalar_std = (float(std[0]) if std else 1.0) if same else None

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x)
        if isinstance(out, Mapping):
            if "out" not in out:
                raise RlipError(f"{self.config.arch} returns a dict without an 'out' entry: {sorted(out)}")
            out = out["out"]
        if not isinstance(out, torch.Tensor):
            raise RlipError(f"{self.config.arch} returns {type(out).__name__}, not a tensor")
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.config.in_channels
        if x.dim() != 4 or x.shape[1] != c:
            raise RlipError(
                f"{self.config.arch} expects images of shape (N, {c}, H, W), got {tuple(x.shape)}"
            )
        x = self._normalise(x)
        n, b = x.shape[0], self.batch
        if b is None or n == b:
            return self._run(x)
        pad = -n % b
        if pad:
            x = torch.cat([x, x[-1:].expand(pad, *x.shape[1:])])
        outs = [self._run(chunk) for chunk in x.split(b)]
        if any(not isinstance(o, torch.Tensor) or o.dim() == 0 or o.shape[0] != b for o in outs):
            raise RlipError(
                f"{self.config.arch}: the program was exported with a fixed batch of {b} but its output "
                f"does not keep the batch on its first axis; export it with a batch of {n} or a dynamic batch"
            )
        return torch.cat(outs, dim=0)[:n]

    def _normalise(self, x: torch.Tensor) -> torch.Tensor:
        if self._shift:
            x = x - self.input_mean
        if self._scalar_std is None:
            return x / self.input_std
        return x if self._scalar_std == 1.0 else x / self._scalar_std

    def train(self, mode: bool = True) -> ForeignModel:
        """Set the train flag; exported programs (frozen in their traced mode) are left alone."""
        self.training = mode
        if not isinstance(self.net, torch.fx.GraphModule):
            self.net.train(mode)
        return self


def infer_config(
    net: nn.Module,
    arch: str,
    input_size: Sequence[int],
    kwargs: dict[str, Any] | None = None,
    mean: Sequence[float] = (),
    std: Sequence[float] = (),
    batch: int | None = None,
) -> ModelConfig:
    """ModelConfig of a foreign network from one forward pass on zeros (rules in the module docstring)."""
    size = tuple(int(v) for v in input_size)
    if len(size) != 3 or min(size) < 1:
        raise RlipError(f"--input-shape (input_size) must be C,H,W, got {input_size}")
    probe = ForeignModel(
        net, ModelConfig(arch, "classification", size[0], 1, size, mean=tuple(mean), std=tuple(std)), batch
    )
    param = next(iter(net.parameters()), None)
    device = param.device if param is not None else torch.device("cpu")
    try:
        x = torch.zeros((batch or 1, *size), device=device)
        with torch.no_grad():
            out = probe.to(device)(x)
    except RlipError:
        raise
    except Exception as e:  # a foreign net may raise anything on a wrong input size
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise RlipError(
            f"{arch} failed on an input of size {size}: {msg}; "
            "pass the right --input-shape C,H,W (input_size)"
        ) from None
    common = {"arch": arch, "in_channels": size[0], "input_size": size, "kwargs": dict(kwargs or {})}
    common |= {"mean": tuple(mean), "std": tuple(std)}
    if out.dim() == 2:
        return ModelConfig(task="classification", num_classes=int(out.shape[1]), **common)
    if out.dim() == 4 and tuple(out.shape[1:]) == size:
        return ModelConfig(task="image2image", num_classes=size[0], reflection_defined=True, **common)
    if out.dim() == 4 and tuple(out.shape[2:]) == size[1:]:
        k = int(out.shape[1])
        return ModelConfig(task="segmentation", num_classes=k, num_mask_classes=k, **common)
    # any other map (a strided feature map, a sequence): Lipschitz bounds only, no radius
    return ModelConfig(task="features", num_classes=int(out.shape[1]) if out.dim() > 1 else 1, **common)


def _torchvision_builder(name: str) -> Any:
    import torchvision

    try:
        return torchvision.models.get_model_builder(name)
    except ValueError:
        avail = ", ".join(sorted(torchvision.models.list_models())[:12])
        raise RlipError(f"unknown torchvision model {name!r}; e.g. {avail}, ...") from None


def _torchvision_net(name: str, kwargs: dict[str, Any], meta: bool = False) -> nn.Module:
    """torchvision.models builder with weights=None (never downloads); `meta`: build on the meta
    device (no memory, no initialisation cost) for a state_dict to be assigned afterwards."""
    kwargs = {k: v for k, v in kwargs.items() if k not in ("weights", "weights_backbone")}
    extra = {"weights_backbone": None} if "weights_backbone" in _builder_params(name) else {}
    try:
        with torch.device("meta") if meta else contextlib.nullcontext():
            return _torchvision_builder(name)(weights=None, **extra, **kwargs)
    except (TypeError, ValueError) as e:
        raise RlipError(f"cannot build torchvision:{name} with {kwargs}: {e}") from None


def _has_meta(model: nn.Module) -> bool:
    return any(t.is_meta for t in (*model.parameters(), *model.buffers()))


def _load_torchvision(name: str, kwargs: dict[str, Any], state: Mapping[str, Any], source: str) -> nn.Module:
    """Build torchvision `name` and load `state` into it (assigned onto a meta-built net when possible)."""
    arch = TORCHVISION_PREFIX + name
    net = _torchvision_net(name, kwargs, meta=True)
    _fit_state_dict(net, state, source, arch, assign=True)
    if _has_meta(net):  # non-persistent buffers are not in the state_dict: build for real
        net = _torchvision_net(name, kwargs)
        _fit_state_dict(net, state, source, arch)
    return net


def _builder_params(name: str) -> set[str]:
    import inspect

    return set(inspect.signature(_torchvision_builder(name)).parameters)


def build_from_config(config: ModelConfig) -> nn.Module:
    """Rebuild a model (random weights) from its config: registry names and `torchvision:NAME`."""
    if config.arch.startswith(TORCHVISION_PREFIX):
        net = _torchvision_net(config.arch[len(TORCHVISION_PREFIX) :], dict(config.kwargs))
        return ForeignModel(net, config)
    if config.arch == "pt2":
        raise RlipError("an exported (.pt2) model can only be loaded from its .pt2 file")
    return model_from_config(config)

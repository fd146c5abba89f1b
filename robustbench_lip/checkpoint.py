"""Model files that hold no code: model directories, `.pt` weights, `.pt2` exports, foreign weights.

A model directory (segmentation_models.pytorch style) holds `model.safetensors` (the state_dict)
and `config.json` = {"format": "rlip-model", "format_version": 1, "model": ModelConfig dict,
"dataset": DatasetInfo dict | null, "training": dict | null, "rlip", "torch", "weights_sha256"}:
enough to rebuild the model from the registry with no code from the file.

`load_model` also reads
- `.pt` / `.pth` / other torch files holding {"config": ModelConfig dict, "state_dict": ...} or a
  bare state_dict (then `arch` names a registered model or `torchvision:NAME`), always with
  `torch.load(..., weights_only=True)`: a pickled nn.Module or any code-bearing pickle is refused
  before anything in it runs;
- `.safetensors` state_dicts (with `arch`, or beside a config.json);
- `.pt2` archives from `torch.export.save` (any architecture). torch.export.load may unpickle
  opaque objects, load AOTInductor shared libraries or fall back to unsafe `torch.load`, so the
  archive is screened first (no AOTInductor/ExecuTorch/MTIA payloads, no custom/opaque objects)
  and loaded with TORCH_FORCE_WEIGHTS_ONLY_LOAD=1, which turns every torch.load into weights_only.

Foreign models (.pt2, torchvision) are wrapped in `ForeignModel`, which carries a ModelConfig whose
task is inferred from one forward pass on a zero image of the input size: output (N, K) →
classification; output shape == input shape → image2image (reflection defined; an ambiguous
C-class segmenter with C input channels counts as image2image); (N, K, H, W) with the input's H, W →
segmentation (mask classes = K, predict_mask = argmax); any other output → features (bounds only,
no certified radius). Dict outputs use their "out" entry
(torchvision segmentation models).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import logging
import os
import pickle
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from robustbench_lip import __version__
from robustbench_lip.config import DatasetInfo, ModelConfig
from robustbench_lip.device import resolve_device
from robustbench_lip.errors import RlipError
from robustbench_lip.io import atomic_write_bytes, atomic_write_json, read_json
from robustbench_lip.models.registry import create_model, list_models, model_from_config, model_task

log = logging.getLogger(__name__)

FORMAT = "rlip-model"
FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
TORCHVISION_PREFIX = "torchvision:"
DEFAULT_FOREIGN_INPUT = (3, 224, 224)

_REFUSE_HINT = (
    "re-save only the weights (torch.save(model.state_dict(), F) and load with --arch NAME), "
    "or save with rlip's save_model / `rlip models export`"
)


# --------------------------------------------------------------------------- foreign wrappers


class ForeignModel(nn.Module):
    """A model from outside the registry (torchvision builder or torch.export program) with a config.

    forward(x (N, C, H, W) in [0, 1]) = net((x − mean) / std) (no normalisation when config.mean
    is empty); a dict output gives its "out" entry. `batch` (for exported programs traced with a
    fixed batch size B): inputs are run in chunks of B (N must be a multiple of B).
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
        x = (x - self.input_mean) / self.input_std
        if self.batch is None or x.shape[0] == self.batch:
            return self._run(x)
        if x.shape[0] % self.batch:
            raise RlipError(
                f"this exported model was traced with batch size {self.batch}; "
                f"use a batch size that is a multiple of {self.batch}, got {x.shape[0]}"
            )
        return torch.cat([self._run(chunk) for chunk in x.split(self.batch)], dim=0)

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
        raise RlipError(f"input_size must be (C, H, W), got {input_size}")
    probe = ForeignModel(
        net, ModelConfig(arch, "classification", size[0], 1, size, mean=tuple(mean), std=tuple(std)), batch
    )
    param = next(iter(net.parameters()), None)
    device = param.device if param is not None else torch.device("cpu")
    x = torch.zeros((batch or 1, *size), device=device)
    try:
        with torch.no_grad():
            out = probe.to(device)(x)
    except RlipError:
        raise
    except Exception as e:  # a foreign net may raise anything on a wrong input size
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise RlipError(
            f"{arch} failed on an input of size {size}: {msg}; pass the right input_size"
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


# --------------------------------------------------------------------------- state dicts


def _fit_state_dict(
    model: nn.Module, state: Mapping[str, Any], source: str, arch: str | None = None, assign: bool = False
) -> None:
    """Load `state` into `model` strictly (assign: take the tensors themselves, for meta-built
    models); any difference is one RlipError line."""
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise RlipError(f"{source}: the state_dict must map names to tensors")
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or wrong:

        def few(keys: list[str]) -> str:
            return ", ".join(keys[:3]) + (f" (+{len(keys) - 3} more)" if len(keys) > 3 else "")

        parts = []
        if wrong:
            k = wrong[0]
            parts.append(
                f"shape mismatch for {few(wrong)}: "
                f"file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
            )
        if missing:
            parts.append(f"missing {few(missing)}")
        if unexpected:
            parts.append(f"unexpected {few(unexpected)}")
        arch = arch or getattr(getattr(model, "config", None), "arch", type(model).__name__)
        raise RlipError(
            f"{source} does not fit {arch}: {'; '.join(parts)}; check the architecture and its options"
        )
    model.load_state_dict(state, strict=True, assign=assign)


def _strip_prefix(state: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    if state and all(k.startswith(prefix) for k in state):
        return {k[len(prefix) :]: v for k, v in state.items()}
    return dict(state)


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
        net.eval()
        cfg = infer_config(
            net, arch, tuple(input_size or DEFAULT_FOREIGN_INPUT), kwargs, tuple(mean or ()), tuple(std or ())
        )
        return ForeignModel(net, cfg)
    task = model_task(arch)  # raises the "unknown model" error
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


# --------------------------------------------------------------------------- saving


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
    data = st_save(_state_for_saving(model), metadata={"format": "pt", "rlip_arch": cfg.arch})
    sha = hashlib.sha256(data).hexdigest()
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
        "weights_sha256": sha,
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
    model.eval()
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


# --------------------------------------------------------------------------- loading


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _torch_load(path: Path) -> Any:
    """torch.load with weights_only=True; code-bearing pickles and corrupt files → RlipError."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "weights only load failed" in str(e).lower():
            raise RlipError(
                f"{path} holds pickled Python objects (e.g. a whole nn.Module), which rlip refuses to "
                f"load because unpickling can run code from the file; {_REFUSE_HINT}"
            ) from None
        raise RlipError(f"{path} is not a valid PyTorch file: {_first_line(e)}") from None
    except FileNotFoundError:
        raise RlipError(f"file not found: {path}") from None
    except (RuntimeError, EOFError, OSError, KeyError, ValueError, zipfile.BadZipFile) as e:
        raise RlipError(f"{path} is truncated or not a PyTorch file ({_first_line(e)})") from None


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise RlipError(f"file not found: {path}") from None
    except OSError as e:
        raise RlipError(f"cannot read {path}: {e.strerror or e}") from None


def _load_safetensors(data: bytes, source: str) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load as st_load

    try:
        return st_load(data)
    except (SafetensorError, ValueError, RuntimeError) as e:
        raise RlipError(f"{source} is truncated or not a safetensors file ({_first_line(e)})") from None


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
            f"input_size must be ({cfg.in_channels}, H, W) for this model, got {tuple(input_size)}"
        )
    return dataclasses.replace(cfg, input_size=size)


def _load_dir(d: Path, arch: str | None, input_size: Sequence[int] | None) -> nn.Module:
    meta = read_model_meta(d)
    cfg = _with_input_size(ModelConfig.from_dict(meta["model"]), input_size)
    if arch and arch != cfg.arch:
        raise RlipError(f"{d} holds a {cfg.arch} model, not {arch}; drop --arch")
    wpath = d / WEIGHTS_FILE
    data = _read_bytes(wpath)
    expected = meta.get("weights_sha256")
    if expected and hashlib.sha256(data).hexdigest() != expected:
        raise RlipError(
            f"{wpath} does not match the sha256 in {CONFIG_FILE} (changed or truncated); re-save the model"
        )
    return _build_and_load(cfg, _load_safetensors(data, str(wpath)), str(wpath))


def _screen_pt2(path: Path) -> None:
    """Refuse archives carrying payloads that torch.export.load would execute or unpickle unsafely."""
    from torch.export.pt2_archive import constants as pc

    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    except (zipfile.BadZipFile, OSError) as e:
        raise RlipError(f"{path} is truncated or not a torch.export archive ({_first_line(e)})") from None
    for name in names:
        inner = name.split("/", 1)[1] if "/" in name else name
        base = name.rsplit("/", 1)[-1]
        if inner.startswith((pc.AOTINDUCTOR_DIR, pc.EXECUTORCH_DIR, pc.MTIA_DIR)) or base.endswith(
            (".so", ".dll", ".dylib")
        ):
            raise RlipError(
                f"{path} contains compiled code ({name}), which rlip refuses to load; "
                "export the model with torch.export.save only (no AOTInductor package)"
            )
        if base.startswith((pc.CUSTOM_OBJ_FILENAME_PREFIX, pc.OPAQUE_OBJ_FILENAME_PREFIX)):
            raise RlipError(
                f"{path} contains pickled Python objects ({name}), which rlip refuses to load because "
                "unpickling can run code from the file; export a model whose constants are tensors"
            )


@contextlib.contextmanager
def _force_weights_only() -> Iterator[None]:
    """Make every torch.load in this block weights_only (torch honours TORCH_FORCE_WEIGHTS_ONLY_LOAD)."""
    keys = ("TORCH_FORCE_WEIGHTS_ONLY_LOAD", "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD")
    old = {k: os.environ.get(k) for k in keys}
    os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = "1"
    os.environ.pop("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", None)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _pt2_input(ep: Any, source: str) -> tuple[tuple[int, ...], int | None]:
    """(input shape without batch, fixed batch size or None when the batch dim is symbolic)."""
    user_inputs = list(ep.graph_signature.user_inputs)
    if len(user_inputs) != 1:
        raise RlipError(
            f"{source}: the exported program takes {len(user_inputs)} inputs; rlip needs one image batch"
        )
    node = next(n for n in ep.graph.nodes if n.op == "placeholder" and n.name == user_inputs[0])
    val = node.meta.get("val")
    shape = tuple(val.shape) if val is not None else None
    if shape is None and ep.example_inputs:
        shape = tuple(ep.example_inputs[0][0].shape)
    if shape is None or len(shape) != 4:
        raise RlipError(f"{source}: the exported program's input is not an image batch (N, C, H, W): {shape}")
    dims = []
    for s in shape[1:]:
        if not isinstance(s, int):
            if ep.example_inputs:
                s = ep.example_inputs[0][0].shape[len(dims) + 1]
            else:
                raise RlipError(f"{source}: dynamic image size without example inputs; pass input_size")
        dims.append(int(s))
    batch = shape[0] if isinstance(shape[0], int) else None
    return tuple(dims), batch


def _load_pt2(path: Path, input_size: Sequence[int] | None) -> nn.Module:
    _screen_pt2(path)
    try:
        with _force_weights_only():
            ep = torch.export.load(path)
    except pickle.UnpicklingError as e:
        if "weights only load failed" in str(e).lower():
            raise RlipError(
                f"{path} holds pickled Python objects, which rlip refuses to load because unpickling "
                f"can run code from the file; export a model whose weights are plain tensors"
            ) from None
        raise RlipError(f"{path} is not a valid torch.export archive: {_first_line(e)}") from None
    except Exception as e:  # torch.export.load raises many kinds on damaged archives
        raise RlipError(f"{path} is truncated or not a torch.export archive ({_first_line(e)})") from None
    size, batch = _pt2_input(ep, str(path))
    if input_size is not None:
        size = tuple(int(v) for v in input_size)
    net = ep.module()
    cfg = infer_config(net, "pt2", size, batch=batch)
    return ForeignModel(net, cfg, batch=batch)


def load_model(
    path: str | os.PathLike[str],
    arch: str | None = None,
    device: str | torch.device = "cpu",
    input_size: Sequence[int] | None = None,
    *,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> nn.Module:
    """Load a model in eval mode on `device`, with `.config` set; never runs code from the file.

    path: a model directory (or its config.json / model.safetensors); a `.pt`/`.pth` file with
    {"config", "state_dict"} or a bare state_dict (+ `arch`); a `.safetensors` state_dict (+ `arch`);
    a `.pt2` torch.export archive. arch: a registered name or `torchvision:NAME` for bare weights.
    input_size (C, H, W): overrides the recorded input size (foreign models: the probe size; default
    3×224×224 for torchvision). mean/std: normalisation for bare weights (foreign models: none by
    default — torchvision weights trained on ImageNet expect its mean/std).
    """
    dev = resolve_device(device)
    p = Path(path)
    if not p.exists():
        raise RlipError(f"no such model file or folder: {p}")
    d = _model_dir(p)
    if d is not None and not (p.suffix == ".safetensors" and arch):
        model = _load_dir(d, arch, input_size)
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
    model.eval()
    log.debug("loaded %s (%s) from %s", model.config.arch, model.config.task, p)
    return model

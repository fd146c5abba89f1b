"""Frozen configuration dataclasses and their JSON round trip.

`ModelConfig` is attached to every model as `model.config`; `DatasetInfo` describes a dataset.
Both serialise with `to_dict()` / `from_dict()` to plain JSON types.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from robustbench_lip.errors import RlipError

Task = Literal["classification", "segmentation", "image2image", "features"]
TASKS: tuple[str, ...] = ("classification", "segmentation", "image2image", "features")


def _tuple(x: Any) -> Any:
    return tuple(_tuple(v) for v in x) if isinstance(x, (list, tuple)) else x


def _from_dict(cls: type, d: dict[str, Any], what: str) -> Any:
    if not isinstance(d, dict):
        raise RlipError(f"{what}: expected an object, got {type(d).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}
    required = {
        f.name
        for f in dataclasses.fields(cls)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    }
    missing = sorted(required - d.keys())
    if missing:
        raise RlipError(f"{what}: missing key(s) {', '.join(missing)}")
    kwargs = {}
    for k, v in d.items():
        if k in names:
            kwargs[k] = v if isinstance(v, dict) else _tuple(v)
    return cls(**kwargs)


@dataclass(frozen=True)
class DatasetInfo:
    """What a model needs to know about a dataset.

    image_size is (H, W); num_classes counts image-level classes; num_mask_classes counts mask
    labels including background (0) and is None without masks; mean/std are per channel.
    options are the generator/loader options that reproduce the dataset (seed, sizes, ...).
    """

    name: str
    in_channels: int
    image_size: tuple[int, int]
    num_classes: int
    class_names: tuple[str, ...]
    has_masks: bool
    num_mask_classes: int | None = None
    mask_class_names: tuple[str, ...] | None = None
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    options: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DatasetInfo:
        return _from_dict(cls, d, "dataset info")


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a model with no code from its file.

    arch: registry name (or `torchvision:NAME`, `pt2` for foreign models); kwargs: the factory's
    keyword arguments; input_size: (C, H, W) the model expects; task: what forward returns —
    classification → logits (N, num_classes); segmentation → logits (N, num_classes, H, W);
    image2image → a tensor of the input's shape; features → any other map (e.g. a strided feature
    map (C′, H′, W′)): Lipschitz bounds only, no certified radius. reflection_defined: R = 2A − I makes sense
    (output shape equals input shape). mean/std: normalisation applied inside the model, so inputs
    are always in [0, 1]. num_mask_classes: labels of `predict_mask` (background 0 included), None
    when the model cannot segment.
    """

    arch: str
    task: Task
    in_channels: int
    num_classes: int
    input_size: tuple[int, int, int]
    kwargs: dict[str, Any] = field(default_factory=dict)
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    num_mask_classes: int | None = None
    reflection_defined: bool = False

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise RlipError(f"model config: task must be one of {', '.join(TASKS)}, got {self.task!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        return _from_dict(cls, d, "model config")


# --- training and sweeps (appended by the training part) ---------------------------------------

OPTIMIZERS: tuple[str, ...] = ("sgd", "adamw")
SCHEDULES: tuple[str, ...] = ("cosine", "constant")


@dataclass(frozen=True)
class TrainConfig:
    """One training run: model × dataset × penalty × optimisation settings.

    lam ≥ 0 is the penalty weight λ; reg_target "A" | "reflection" | None (None → the reflection
    where the model defines it, else A); reg_* are the penalty options (lipschitz/penalty.py);
    data_options go to `get_dataset` (n_train, n_test, image_size, seed, ...); model_options to
    `create_model_for` (e.g. width). augment None → flip/crop for natural images (cifar10, coco),
    none for generated ones. reg_bn "batch" | "running": the BatchNorm statistics of the penalty
    (PenaltyConfig.bn); reg_hard: sub-batch slots for the hardest points so far (PenaltyConfig.hard).
    logit_scale T > 0: segmenters' losses see T·logits (the predicted mask,
    the argmax, is unchanged) — a firmly non-expansive image-to-image map has margins in image units,
    which T turns into usable logits. amp None → on with CUDA. schedule "cosine" (after a linear warm-up over
    the fraction `warmup` of the steps) or "constant". sigma_points/sigma_iters: held-out points and
    power iterations of the per-epoch σ measurement (sigma_final_iters after the last epoch).
    device "auto" | "cpu" | "cuda[:N]".
    """

    model: str
    data: str
    lam: float = 0.0
    root: str | None = None
    data_options: dict[str, Any] = field(default_factory=dict)
    model_options: dict[str, Any] = field(default_factory=dict)
    reg_target: str | None = None
    reg_eps: float = 0.0
    reg_iters: int = 1
    reg_points: str = "data"
    reg_reduce: str = "max"
    reg_subbatch: int = 8
    reg_every: int = 1
    reg_warm: bool = False
    reg_bn: str = "batch"
    reg_hard: int = 4
    epochs: int = 5
    batch_size: int = 64
    optimizer: str = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "cosine"
    warmup: float = 0.0
    dice: bool = False
    logit_scale: float = 1.0
    augment: bool | None = None
    seed: int = 0
    device: str = "auto"
    amp: bool | None = None
    sigma_points: int = 64
    sigma_iters: int = 20
    sigma_final_iters: int = 50

    def __post_init__(self) -> None:
        def bad(msg: str) -> RlipError:
            return RlipError(f"training config: {msg}")

        if not isinstance(self.model, str) or not self.model:
            raise bad("model must be a non-empty name")
        if not isinstance(self.data, str) or not self.data:
            raise bad("data must be a non-empty name")
        lam = self.lam
        if isinstance(lam, bool) or not isinstance(lam, (int, float)) or not (0 <= lam < float("inf")):
            raise bad(f"lam (λ) must be a finite number ≥ 0, got {lam!r}")
        if self.reg_target not in (None, "A", "reflection"):
            raise bad(f"reg_target must be A or reflection, got {self.reg_target!r}")
        if self.optimizer not in OPTIMIZERS:
            raise bad(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        if self.schedule not in SCHEDULES:
            raise bad(f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        for name in ("epochs", "batch_size", "reg_iters", "reg_every", "sigma_iters", "sigma_final_iters"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise bad(f"{name} must be an integer ≥ 1, got {v!r}")
        for name in ("reg_subbatch", "reg_hard", "sigma_points", "seed"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise bad(f"{name} must be an integer ≥ 0, got {v!r}")
        for name in ("lr", "momentum", "weight_decay"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not (0 <= v < float("inf")):
                raise bad(f"{name} must be a finite number ≥ 0, got {v!r}")
        if (
            isinstance(self.warmup, bool)
            or not isinstance(self.warmup, (int, float))
            or not 0 <= self.warmup < 1
        ):
            raise bad(f"warmup must be a fraction of the steps in [0, 1), got {self.warmup!r}")
        if not (isinstance(self.reg_eps, (int, float)) and 0 <= self.reg_eps <= 1):
            raise bad(f"reg_eps must lie in [0, 1], got {self.reg_eps!r}")
        if self.reg_points not in ("data", "interp"):
            raise bad(f"reg_points must be data or interp, got {self.reg_points!r}")
        if self.reg_reduce not in ("max", "mean"):
            raise bad(f"reg_reduce must be max or mean, got {self.reg_reduce!r}")
        if self.reg_bn not in ("batch", "running"):
            raise bad(f"reg_bn must be batch or running, got {self.reg_bn!r}")
        ls = self.logit_scale
        if isinstance(ls, bool) or not isinstance(ls, (int, float)) or not (0 < ls < float("inf")):
            raise bad(f"logit_scale must be a finite number > 0, got {ls!r}")
        if not isinstance(self.data_options, dict) or not isinstance(self.model_options, dict):
            raise bad("data_options and model_options must be tables")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        if isinstance(d, dict):
            unknown = sorted(set(d) - {f.name for f in dataclasses.fields(cls)})
            if unknown:
                raise RlipError(f"training config: unknown key(s) {', '.join(unknown)}")
        return _from_dict(cls, d, "training config")


def format_lam(lam: float) -> str:
    """Canonical short text of λ for run names: 0, 1e-06, 0.0001, 1."""
    return f"{float(lam):g}"


@dataclass(frozen=True)
class SweepSpec:
    """A λ sweep read from a TOML spec (zoo/*.toml).

    ```toml
    name = "shapes_cpu"
    [data]                      # name + get_dataset options (+ root)
    name = "shapes"
    n_train = 2000
    [sweep]
    models = ["mresnet18_w8"]
    lams = [0, 1e-6, 1e-4, 1e-2, 1]
    seeds = [0]
    [train]                     # any TrainConfig field except model/data/lam/seed
    epochs = 4
    [model]                     # optional create_model_for overrides (e.g. width)
    [certify]                   # optional settings for `rlip certify` (parsed, not used by training)
    [attack]                    # optional settings for `rlip attack` (parsed, not used by training)
    ```
    One run per (model, λ, seed), named `<spec name>-<model>-lam<λ>-s<seed>`.
    """

    name: str
    data: str
    models: tuple[str, ...]
    lams: tuple[float, ...]
    seeds: tuple[int, ...] = (0,)
    root: str | None = None
    data_options: dict[str, Any] = field(default_factory=dict)
    model_options: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    certify: dict[str, Any] = field(default_factory=dict)
    attack: dict[str, Any] = field(default_factory=dict)

    def run_name(self, model: str, lam: float, seed: int) -> str:
        """The stable run folder name: `<spec>-<model>-lam<λ>-s<seed>`."""
        return f"{self.name}-{model}-lam{format_lam(lam)}-s{seed}"

    def runs(self) -> list[tuple[str, TrainConfig]]:
        """(run name, TrainConfig) for every (model, λ, seed), in spec order."""
        out = []
        for model in self.models:
            for lam in self.lams:
                for seed in self.seeds:
                    cfg = TrainConfig(
                        model=model,
                        data=self.data,
                        lam=float(lam),
                        seed=int(seed),
                        root=self.root,
                        data_options=dict(self.data_options),
                        model_options=dict(self.model_options),
                        **self.train,
                    )
                    out.append((self.run_name(model, lam, seed), cfg))
        return out

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_toml(cls, path: str | Any) -> SweepSpec:
        """Parse and validate a spec file; a malformed or incomplete file is an RlipError naming the key."""
        from pathlib import Path

        import tomllib

        p = Path(path)
        try:
            raw = tomllib.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise RlipError(f"sweep spec not found: {p}") from None
        except (OSError, UnicodeDecodeError) as e:
            raise RlipError(f"cannot read sweep spec {p}: {e}") from None
        except tomllib.TOMLDecodeError as e:
            raise RlipError(f"{p}: malformed TOML: {e}") from None
        return cls.from_mapping(raw, what=str(p))

    @classmethod
    def from_mapping(cls, raw: dict[str, Any], what: str = "sweep spec") -> SweepSpec:
        def bad(key: str, msg: str) -> RlipError:
            return RlipError(f"{what}: key '{key}' {msg}")

        def table(key: str, required: bool) -> dict[str, Any]:
            if key not in raw:
                if required:
                    raise bad(key, "is missing (a table is required)")
                return {}
            if not isinstance(raw[key], dict):
                raise bad(key, "must be a table")
            return dict(raw[key])

        known = {"name", "data", "sweep", "train", "model", "certify", "attack"}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise bad(unknown[0], f"is not recognised (expected: {', '.join(sorted(known))})")
        name = raw.get("name", _spec_stem(what))
        if not isinstance(name, str) or not name:
            raise bad("name", "must be a non-empty string")
        data = table("data", True)
        if not isinstance(data.get("name"), str) or not data.get("name"):
            raise bad("data.name", "is missing or not a string")
        data_name = data.pop("name")
        root = data.pop("root", None)
        if root is not None and not isinstance(root, str):
            raise bad("data.root", "must be a string")
        sweep = table("sweep", True)
        for key in sorted(set(sweep) - {"models", "lams", "seeds"}):
            raise bad(f"sweep.{key}", "is not recognised (expected models, lams, seeds)")
        models = sweep.get("models")
        if models is None:
            raise bad("sweep.models", "is missing")
        if isinstance(models, str):
            models = [models]
        if not isinstance(models, list) or not models or not all(isinstance(m, str) and m for m in models):
            raise bad("sweep.models", "must be a non-empty list of model names")
        lams = sweep.get("lams")
        if lams is None:
            raise bad("sweep.lams", "is missing")
        if not isinstance(lams, list) or not lams:
            raise bad("sweep.lams", "must be a non-empty list of numbers")
        for v in lams:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not (0 <= v < float("inf")):
                raise bad("sweep.lams", f"must hold finite numbers ≥ 0, got {v!r}")
        seeds = sweep.get("seeds", [0])
        if isinstance(seeds, int) and not isinstance(seeds, bool):
            seeds = [seeds]
        if not isinstance(seeds, list) or not seeds:
            raise bad("sweep.seeds", "must be a non-empty list of integers")
        for v in seeds:
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise bad("sweep.seeds", f"must hold integers ≥ 0, got {v!r}")
        train = table("train", False)
        fixed = {"model", "data", "lam", "seed", "root", "data_options", "model_options"}
        allowed = {f.name for f in dataclasses.fields(TrainConfig)} - fixed
        for key in sorted(train):
            if key not in allowed:
                raise bad(f"train.{key}", "is not a training setting")
        try:
            TrainConfig(model=models[0], data=data_name, **train)
        except RlipError as e:
            raise RlipError(f"{what}: [train] {str(e).removeprefix('training config: ')}") from None
        except TypeError as e:
            raise RlipError(f"{what}: [train] {e}") from None
        return cls(
            name=name,
            data=data_name,
            models=tuple(models),
            lams=tuple(float(v) for v in lams),
            seeds=tuple(int(v) for v in seeds),
            root=root,
            data_options=data,
            model_options=table("model", False),
            train=train,
            certify=table("certify", False),
            attack=table("attack", False),
        )


def _spec_stem(what: str) -> str:
    """The file stem of a spec path (the default sweep name)."""
    from pathlib import PurePath

    return PurePath(what).stem or "sweep"

"""`TrainConfig`: one training run — model × dataset × penalty × optimiser × loop settings.

Nested in Python (`cfg.penalty: PenaltyConfig`, `cfg.optim: OptimConfig`), flat on disk: `to_dict()`
writes the keys train records, run folders and zoo/*.toml specs have always used (`lam`, `reg_*`,
`optimizer`, `lr`, ...; see config/flat.py), and `from_dict()` reads that form, the nested one
(`penalty` / `optim` tables) or a mix of both.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from typing import Any

from robustbench_lip.choices import Loss
from robustbench_lip.config import check
from robustbench_lip.config.fields import described
from robustbench_lip.config.flat import flat_names
from robustbench_lip.config.optim import OptimConfig
from robustbench_lip.config.penalty import PenaltyConfig
from robustbench_lip.errors import RlipError

#: the loss options (TrainConfig.loss_<name>) and the losses that take each
LOSS_OPTIONS: dict[str, tuple[str, ...]] = {
    "offset": ("margin_ce",),
    "temperature": ("margin_ce",),
    "margin": ("hinge", "hkr"),
    "alpha": ("hkr",),
}

#: the nested sections of a TrainConfig and their dataclasses
SECTIONS: dict[str, Any] = {"penalty": PenaltyConfig, "optim": OptimConfig}


@dataclass(frozen=True)
class TrainConfig:
    """One training run (a dict given for `penalty` or `optim` is turned into its dataclass).

    data_options go to `get_dataset` (n_train, n_test, image_size, seed, ...); model_options to
    `create_model_for` (e.g. width). epochs, batch_size ≥ 1. dice: add a soft Dice loss
    (segmenters). logit_scale T > 0: segmenters' losses see T·logits (the predicted mask, the
    argmax, is unchanged) — a firmly non-expansive image-to-image map has margins in image units,
    which T turns into usable logits. augment None → flip/crop for natural images (cifar10, coco),
    none for generated ones. noise_sigma S ≥ 0: Gaussian noise N(0, S²) added to the task loss's
    training inputs (pixel units, not clamped, as in Cohen et al. 2019; 0 = off; the penalty keeps
    the clean points). amp None → on with CUDA. sigma_points/sigma_iters: held-out points and
    power iterations of the per-epoch σ measurement (sigma_final_iters after the last epoch).
    device "auto" | "cpu" | "cuda[:N]". loss: "ce" (default) | "margin_ce" | "hinge" | "hkr"
    (robustbench_lip.losses_lip) with its options loss_offset, loss_temperature (margin_ce),
    loss_margin (hinge, hkr), loss_alpha (hkr); None → the loss's own default; an option the loss
    does not take is an error.
    """

    model: str = described(help="Registered model name (rlip models list).")
    data: str = described(help="Dataset name (rlip data list).")
    root: str | None = described(None, "Dataset folder (cifar10, coco, folder: your own images).")
    data_options: dict[str, Any] = field(default_factory=dict)
    model_options: dict[str, Any] = field(default_factory=dict)
    penalty: PenaltyConfig = field(default_factory=PenaltyConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    epochs: int = described(5)
    batch_size: int = described(64)
    dice: bool = described(False, "Add a soft Dice loss (segmenters).")
    logit_scale: float = described(1.0, "Segmenters: the loss sees scale·logits (mask unchanged).")
    augment: bool | None = described(
        None, "Flip/crop (default: natural images only).", decls=("--augment/--no-augment",)
    )
    noise_sigma: float = described(
        0.0,
        "Gaussian noise augmentation: add N(0, S²) to the training inputs (pixel units; not clamped, "
        "as in Cohen et al.; 0 = off). For randomized smoothing.",
        min=0.0,
    )
    seed: int = described(0)
    device: str = described("auto", "auto, cpu, cuda or cuda:N.")
    amp: bool | None = None
    sigma_points: int = described(64, "Held-out points for σ.")
    sigma_iters: int = 20
    sigma_final_iters: int = 50
    loss: str = described("ce", "ce, margin_ce (offset, temperature), hinge (margin), hkr.", cli=Loss)
    loss_offset: float | None = described(None, "margin_ce: logit offset of the true class.")
    loss_temperature: float | None = described(None, "margin_ce: temperature > 0.")
    loss_margin: float | None = described(None, "hinge / hkr: margin.")
    loss_alpha: float | None = described(None, "hkr: hinge weight in [0, 1].")

    def __post_init__(self) -> None:
        if isinstance(self.loss, Loss):
            object.__setattr__(self, "loss", self.loss.value)
        for name, cls in SECTIONS.items():
            value = getattr(self, name)
            if isinstance(value, dict):
                object.__setattr__(self, name, cls(**value))
            elif not isinstance(value, cls):
                raise RlipError(f"training config: {name} must be a {cls.__name__} or a table")
        msg = _problem(self)
        if msg:
            raise RlipError(f"training config: {msg}")

    def loss_options(self) -> dict[str, float]:
        """The options given for the loss ({"offset": 0.15, ...}; the loss's defaults for the rest)."""
        return {k: getattr(self, f"loss_{k}") for k in LOSS_OPTIONS if getattr(self, f"loss_{k}") is not None}

    @property
    def lam(self) -> float:
        """The penalty weight λ (penalty.lam)."""
        return self.penalty.lam

    def to_dict(self) -> dict[str, Any]:
        """The flat form (see the module docstring), plain JSON types."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in SECTIONS:
                names = flat_names(SECTIONS[f.name])
                out.update({names[k]: v for k, v in dataclasses.asdict(value).items()})
            else:
                out[f.name] = copy.deepcopy(value)
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """Read the flat form, the nested one or a mix; unknown or doubly given keys are errors."""
        if not isinstance(d, dict):
            raise RlipError(f"training config: expected an object, got {type(d).__name__}")
        rest = dict(d)
        sections = {name: _section(rest, name, sec) for name, sec in SECTIONS.items()}
        top = {f.name for f in dataclasses.fields(cls)} - set(SECTIONS)
        unknown = check.unknown_keys(rest, top)
        if unknown:
            raise RlipError(f"training config: unknown key(s) {', '.join(unknown)}")
        missing = [k for k in ("model", "data") if k not in rest]
        if missing:
            raise RlipError(f"training config: missing key(s) {', '.join(missing)}")
        return cls(**rest, **sections)


def settable_keys() -> set[str]:
    """Every key `TrainConfig.from_dict` accepts: top-level fields, section tables, flat names."""
    keys = {f.name for f in dataclasses.fields(TrainConfig)}
    for sec in SECTIONS.values():
        keys |= set(flat_names(sec).values())
    return keys


def _section(rest: dict[str, Any], name: str, cls: Any) -> Any:
    """Pop the section `name` from `rest` — its table and its flat keys — and build its dataclass."""
    table = rest.pop(name, None)
    if table is None:
        table = {}
    if isinstance(table, cls):
        table = dataclasses.asdict(table)
    if not isinstance(table, dict):
        raise RlipError(f"training config: {name} must be a table")
    names = flat_names(cls)
    unknown = check.unknown_keys(table, set(names))
    if unknown:
        raise RlipError(f"training config: unknown key(s) {', '.join(f'{name}.{k}' for k in unknown)}")
    kwargs = dict(table)
    for fld, flat in names.items():
        if flat in rest:
            if fld in kwargs:
                raise RlipError(f"training config: {flat} and {name}.{fld} are the same setting; give one")
            kwargs[fld] = rest.pop(flat)
    return cls(**kwargs)


def _problem(c: TrainConfig) -> str | None:
    """The first invalid top-level setting, as a message, or None."""
    if not isinstance(c.model, str) or not c.model:
        return "model must be a non-empty name"
    if not isinstance(c.data, str) or not c.data:
        return "data must be a non-empty name"
    ints = (("epochs", 1), ("batch_size", 1), ("sigma_iters", 1), ("sigma_final_iters", 1))
    ints += (("sigma_points", 0), ("seed", 0))
    checks = [check.integer(getattr(c, k), k, low) for k, low in ints]
    checks.append(check.number(c.noise_sigma, "noise_sigma"))
    checks.append(check.number(c.logit_scale, "logit_scale", what="a finite number > 0"))
    if not checks[-1] and c.logit_scale <= 0:
        checks.append(f"logit_scale must be a finite number > 0, got {c.logit_scale!r}")
    if not isinstance(c.data_options, dict) or not isinstance(c.model_options, dict):
        checks.append("data_options and model_options must be tables")
    checks.append(_loss_problem(c))
    return next((m for m in checks if m), None)


def _loss_problem(c: TrainConfig) -> str | None:
    """The loss name and its options: known, given only for the loss that takes them, in range."""
    if m := check.choice(c.loss, Loss, "loss"):
        return m
    for name, takers in LOSS_OPTIONS.items():
        v = getattr(c, f"loss_{name}")
        if v is None:
            continue
        if c.loss not in takers:
            return f"loss_{name} is an option of the loss {' / '.join(takers)}, not of {c.loss}"
        high = 1.0 if name == "alpha" else float("inf")
        if m := check.number(v, f"loss_{name}", 0.0, high):
            return m
        if name in ("temperature", "margin") and v <= 0:
            return f"loss_{name} must be > 0, got {v!r}"
    return None

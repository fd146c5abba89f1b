"""`SweepSpec`: a λ sweep read from a TOML spec (zoo/*.toml)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any, ClassVar

from robustbench_lip.config.fields import described
from robustbench_lip.config.train import TrainConfig, settable_keys
from robustbench_lip.errors import RlipError

SPEC_KEYS = frozenset({"name", "data", "sweep", "train", "model", "certify", "attack"})
SWEEP_KEYS = frozenset({"models", "lams", "seeds"})
#: TrainConfig keys a spec sets elsewhere than in [train] (from [data], [model] and [sweep])
FIXED_KEYS = frozenset({"model", "data", "lam", "seed", "root", "data_options", "model_options"})


def format_lam(lam: float) -> str:
    """Canonical short text of λ for run names: 0, 1e-06, 0.0001, 1."""
    return f"{float(lam):g}"


@dataclass(frozen=True)
class SlurmOptions:
    """Slurm resources of each job: partition (None → cluster default), GPUs per job, time limit (min),
    CPUs per job, array parallelism (None → unlimited). Flags (`rlip zoo train`): `--slurm-<field>`,
    `--slurm-time` for time_min; parallel has none."""

    FLAT_PREFIX: ClassVar[str] = "slurm_"
    FLAT_RENAMES: ClassVar[dict[str, str]] = {"time_min": "slurm_time"}

    partition: str | None = described(None)
    gpus: int = described(1, "GPUs per job.")
    time_min: int = described(240, "Time limit per job (minutes).")
    cpus: int = described(4, "CPUs per job.")
    parallel: int | None = None


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
    [train]                     # any TrainConfig setting except model/data/lam/seed, flat (reg_eps = 0.1)
    epochs = 4                  # or in [train.penalty] / [train.optim] tables (eps = 0.1)
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

    def config(self, model: str, lam: float, seed: int) -> TrainConfig:
        """The TrainConfig of one (model, λ, seed)."""
        fixed = {"model": model, "data": self.data, "lam": float(lam), "seed": int(seed), "root": self.root}
        options = {"data_options": dict(self.data_options), "model_options": dict(self.model_options)}
        return TrainConfig.from_dict({**self.train, **fixed, **options})

    def runs(self) -> list[tuple[str, TrainConfig]]:
        """(run name, TrainConfig) for every (model, λ, seed), in spec order."""
        return [
            (self.run_name(model, lam, seed), self.config(model, lam, seed))
            for model in self.models
            for lam in self.lams
            for seed in self.seeds
        ]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_toml(cls, path: str | Path) -> SweepSpec:
        """Parse and validate a spec file; a malformed or incomplete file is an RlipError naming the key."""
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
        """Validate a parsed spec (the TOML's tables); errors name the key at fault."""
        spec = _Reader(raw, what)
        unknown = sorted(set(raw) - SPEC_KEYS)
        if unknown:
            raise spec.bad(unknown[0], f"is not recognised (expected: {', '.join(sorted(SPEC_KEYS))})")
        name = raw.get("name", PurePath(what).stem or "sweep")
        if not isinstance(name, str) or not name:
            raise spec.bad("name", "must be a non-empty string")
        data_name, root, data_options = spec.data()
        models, lams, seeds = spec.sweep()
        train = spec.train(models[0], data_name)
        return cls(
            name=name,
            data=data_name,
            models=models,
            lams=lams,
            seeds=seeds,
            root=root,
            data_options=data_options,
            model_options=spec.table("model", False),
            train=train,
            certify=spec.table("certify", False),
            attack=spec.table("attack", False),
        )


class _Reader:
    """Reads and checks the tables of a parsed spec; `bad` makes the one-line errors."""

    def __init__(self, raw: dict[str, Any], what: str) -> None:
        self.raw, self.what = raw, what

    def bad(self, key: str, msg: str) -> RlipError:
        return RlipError(f"{self.what}: key '{key}' {msg}")

    def table(self, key: str, required: bool) -> dict[str, Any]:
        if key not in self.raw:
            if required:
                raise self.bad(key, "is missing (a table is required)")
            return {}
        if not isinstance(self.raw[key], dict):
            raise self.bad(key, "must be a table")
        return dict(self.raw[key])

    def data(self) -> tuple[str, str | None, dict[str, Any]]:
        """(dataset name, root, get_dataset options) of [data]."""
        data = self.table("data", True)
        if not isinstance(data.get("name"), str) or not data.get("name"):
            raise self.bad("data.name", "is missing or not a string")
        name = data.pop("name")
        root = data.pop("root", None)
        if root is not None and not isinstance(root, str):
            raise self.bad("data.root", "must be a string")
        return name, root, data

    def sweep(self) -> tuple[tuple[str, ...], tuple[float, ...], tuple[int, ...]]:
        """(models, λs, seeds) of [sweep]."""
        sweep = self.table("sweep", True)
        for key in sorted(set(sweep) - SWEEP_KEYS):
            raise self.bad(f"sweep.{key}", "is not recognised (expected models, lams, seeds)")
        models = sweep.get("models")
        if models is None:
            raise self.bad("sweep.models", "is missing")
        models = [models] if isinstance(models, str) else models
        if not isinstance(models, list) or not models or not all(isinstance(m, str) and m for m in models):
            raise self.bad("sweep.models", "must be a non-empty list of model names")
        lams = sweep.get("lams")
        if lams is None:
            raise self.bad("sweep.lams", "is missing")
        if not isinstance(lams, list) or not lams:
            raise self.bad("sweep.lams", "must be a non-empty list of numbers")
        for v in lams:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not (0 <= v < math.inf):
                raise self.bad("sweep.lams", f"must hold finite numbers ≥ 0, got {v!r}")
        seeds = sweep.get("seeds", [0])
        seeds = [seeds] if isinstance(seeds, int) and not isinstance(seeds, bool) else seeds
        if not isinstance(seeds, list) or not seeds:
            raise self.bad("sweep.seeds", "must be a non-empty list of integers")
        for v in seeds:
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise self.bad("sweep.seeds", f"must hold integers ≥ 0, got {v!r}")
        return tuple(models), tuple(float(v) for v in lams), tuple(int(v) for v in seeds)

    def train(self, model: str, data: str) -> dict[str, Any]:
        """The [train] table, checked by building a TrainConfig from it."""
        train = self.table("train", False)
        allowed = settable_keys() - FIXED_KEYS
        for key in sorted(train):
            if key not in allowed:
                raise self.bad(f"train.{key}", "is not a training setting")
        if isinstance(train.get("penalty"), dict) and "lam" in train["penalty"]:
            raise self.bad("train.penalty.lam", "is not a training setting (λ comes from sweep.lams)")
        try:
            TrainConfig.from_dict({**train, "model": model, "data": data})
        except RlipError as e:
            raise RlipError(f"{self.what}: [train] {str(e).removeprefix('training config: ')}") from None
        except TypeError as e:
            raise RlipError(f"{self.what}: [train] {e}") from None
        return train

"""What a model and a dataset are: `ModelConfig` (attached to every model as `model.config`) and
`DatasetInfo`. Both serialise with `to_dict()` / `from_dict()` to plain JSON types."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from robustbench_lip.errors import RlipError
from robustbench_lip.tasks import TASKS, Task


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

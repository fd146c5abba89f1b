"""The task vocabulary — what a model's forward returns — and the one task inference.

`Task` is the str-Enum every layer uses (`ModelConfig.task`, records, evaluations); `TASKS` its values.
`task_of(model)` says which task a model has (its config's, else guessed from an output);
`scored_task(task)` says how an evaluation scores it: on image labels (CLASSIFICATION) or on pixel
masks (SEGMENTATION: segmenters and image-to-image models), None for feature maps.

Imports nothing but `errors` (configs, records and evaluations all import it).
"""

from __future__ import annotations

from enum import Enum
from typing import Any

from robustbench_lip.errors import RlipError


class Task(str, Enum):
    """What a model's forward returns (`ModelConfig.task`): the one task vocabulary of the code."""

    CLASSIFICATION = "classification"
    SEGMENTATION = "segmentation"
    IMAGE2IMAGE = "image2image"
    FEATURES = "features"


#: Every task name, in declaration order.
TASKS: tuple[str, ...] = tuple(t.value for t in Task)
#: The tasks an evaluation scores (on image labels, or on pixel masks).
SCORED_TASKS: tuple[str, ...] = (Task.CLASSIFICATION.value, Task.SEGMENTATION.value)


def parse_task(value: Any, what: str = "task") -> Task:
    """`value` as a Task; RlipError naming the tasks otherwise."""
    try:
        return Task(value)
    except ValueError:
        raise RlipError(f"{what} must be one of {', '.join(TASKS)}, got {value!r}") from None


def task_of(model: Any, out: Any = None, x: Any = None) -> Task:
    """The task of `model`: its config's; without a config, guessed from an output `out` (N, …) of
    input `x` (N, C, H, W): (N, K) classification, x's shape image2image, (N, M, H, W) segmentation,
    else features. No config and no output: RlipError."""
    cfg = getattr(model, "config", None)
    if cfg is not None and getattr(cfg, "task", None) is not None:
        return parse_task(cfg.task, "model config: task")
    if out is None or x is None:
        raise RlipError(f"model {type(model).__name__} has no .config.task; load it with rlip's load_model")
    if out.dim() == 2:
        return Task.CLASSIFICATION
    if out.shape == x.shape:
        return Task.IMAGE2IMAGE
    if out.dim() == 4 and out.shape[2:] == x.shape[2:]:
        return Task.SEGMENTATION
    return Task.FEATURES


def scored_task(task: Task) -> Task | None:
    """How a model of `task` is scored: CLASSIFICATION (image labels), SEGMENTATION (pixel masks:
    segmenters and image-to-image models), None (feature maps: nothing to score)."""
    if task is Task.CLASSIFICATION:
        return Task.CLASSIFICATION
    if task in (Task.SEGMENTATION, Task.IMAGE2IMAGE):
        return Task.SEGMENTATION
    return None

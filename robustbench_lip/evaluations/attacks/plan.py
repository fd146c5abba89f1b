"""A checked attack request (`plan_attacks` → `Plan`): the model's attacked task, the objective, the
attacks (`all` expanded, protocols, checked against the model), the budgets and the samples.
One-line RlipError when the request cannot run."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch.utils.data import Dataset

from robustbench_lip.attacks.base import check_budget, check_norm
from robustbench_lip.attacks.registry import ATTACKS, DEFAULT_STEPS, protocol_default_steps
from robustbench_lip.attacks.segmentation import pixel_logits_fn
from robustbench_lip.errors import RlipError
from robustbench_lip.evaluations.attacks.protocol import check_restarts, misfit, protocol_attacks
from robustbench_lip.scoring import dataset_has_masks
from robustbench_lip.tasks import Task, scored_task, task_of

logger = logging.getLogger(__name__)

OBJECTIVES: tuple[str, ...] = ("cls", "pixel")


def attacked_task(model: torch.nn.Module) -> Task:
    """How the model is attacked and scored (tasks.scored_task): Task.CLASSIFICATION (image labels)
    or Task.SEGMENTATION (pixel masks: segmentation models, and image2image models that segment)."""
    task = task_of(model)
    scored = scored_task(task)
    cfg = model.config  # task_of found it
    if scored is None:
        raise RlipError(
            f"model {cfg.arch} returns a feature map {cfg.num_classes}×…, not labels or masks: "
            "nothing to attack"
        )
    if scored is Task.SEGMENTATION and not _can_segment(model):
        raise RlipError(f"model {cfg.arch} ({task.value}) cannot be attacked: it predicts no labels or masks")
    return scored


def _can_segment(model: torch.nn.Module) -> bool:
    try:
        pixel_logits_fn(model)
    except RlipError:
        return False
    return True

def resolve_attacks(
    attacks: str | Sequence[str], task: Task, pixel_ok: bool, objective: str, norm: str | None = None
) -> list[str]:
    """Expand `all` (the registry's `in_all` attacks that fit the model), check names against the
    model's task (and `norm`); one-line errors for bad requests. Attacks marked `last` go last."""
    names = [attacks] if isinstance(attacks, str) else list(attacks)
    out: list[str] = []
    for a in (str(a).strip().lower() for a in names):
        if a == "all":
            expanded = [
                n for n, s in ATTACKS.items() if s.in_all and misfit(s, task, pixel_ok, objective) is None
            ]
        elif a not in ATTACKS:
            raise RlipError(f"unknown attack {a!r}; expected one of {', '.join((*ATTACKS.names(), 'all'))}")
        else:
            expanded = [a]
        out.extend(e for e in expanded if e not in out)
    if not out:
        raise RlipError("no attack given")
    for a in out:
        spec = ATTACKS.get(a)
        if (why := misfit(spec, task, pixel_ok, objective)) is not None:
            raise RlipError(why)
        if norm is not None and norm not in spec.norms:
            raise RlipError(f"attack {a!r} supports {', '.join(spec.norms)}, not {norm}")
    last = {a for a in out if ATTACKS.get(a).last}
    return [a for a in out if a not in last] + [a for a in out if a in last]  # sea last: see runners


@dataclass(kw_only=True)
class Plan:
    """A checked attack request: what to run on which samples."""

    task: Task
    norm: str
    eps: list[float]
    names: list[str]
    objective: str
    pixel_ok: bool
    n: int
    steps: int
    alpha: float | None
    seed: int
    batch_size: int
    ignore_index: int | None
    restarts: int = 1
    protocol: str | None = None

    @property
    def cells(self) -> list[tuple[float, str]]:
        return [(e, a) for e in self.eps for a in self.names]

    @property
    def with_worst(self) -> bool:
        return len(self.names) > 1 and self.protocol is None  # a protocol's figure is its own

    @property
    def image_objective(self) -> bool:
        return self.task is Task.CLASSIFICATION and self.objective == "cls"


def _check_numbers(
    eps_list: Sequence[float], norm: str, steps: int, alpha: float | None, batch_size: int
) -> tuple[str, list[float]]:
    norm = check_norm(norm)
    eps_values = list(dict.fromkeys(check_budget(e, norm) for e in eps_list))
    if not eps_values:
        raise RlipError("no eps given")
    if int(steps) < 1:
        raise RlipError(f"steps must be ≥ 1, got {steps}")
    if alpha is not None and not (math.isfinite(alpha) and alpha > 0):
        raise RlipError(f"alpha must be a positive number, got {alpha}")
    if int(batch_size) < 1:
        raise RlipError(f"batch size must be ≥ 1, got {batch_size}")
    return norm, eps_values


def _objective(task: Task, objective: str | None, pixel_ok: bool) -> str:
    if objective is None:
        objective = "cls" if task is Task.CLASSIFICATION else "pixel"
    objective = str(objective).lower()
    if objective not in OBJECTIVES:
        raise RlipError(f"unknown objective {objective!r}; expected cls or pixel")
    if objective == "cls" and task is Task.SEGMENTATION:
        raise RlipError("objective 'cls' needs a classifier; a segmenter is attacked on its pixels (pixel)")
    if objective == "pixel" and not pixel_ok:
        raise RlipError("objective 'pixel' needs a model that segments and a dataset with masks")
    return objective


def _sample_count(dataset: Dataset, n: int | None) -> int:
    total_n = len(dataset)  # type: ignore[arg-type]
    if total_n == 0:
        raise RlipError("the dataset is empty")
    if n is None:
        return total_n
    if int(n) < 1:
        raise RlipError(f"n must be ≥ 1, got {n}")
    if n > total_n:
        logger.warning("n=%d is larger than the dataset (%d samples); using %d", n, total_n, total_n)
        return total_n
    return int(n)


def plan_attacks(
    model: torch.nn.Module,
    dataset: Dataset,
    eps_list: Sequence[float],
    attacks: str | Sequence[str],
    norm: str,
    steps: int,
    alpha: float | None,
    n: int | None,
    batch_size: int,
    seed: int,
    objective: str | None,
    ignore_index: int | None,
    preset: str | None = None,
    restarts: int = 1,
) -> Plan:
    """Check an attack request against the model and dataset (one-line RlipError when it cannot run).
    With a `preset` (protocol) the attacks are the protocol's (`attacks` is ignored); steps None:
    the protocol's own (attacks.registry.protocol_default_steps: SEA's 300), else DEFAULT_STEPS."""
    if steps is None:
        steps = protocol_default_steps(str(preset).lower()) if preset is not None else DEFAULT_STEPS
    norm, eps_values = _check_numbers(eps_list, norm, steps, alpha, batch_size)
    task = attacked_task(model)
    has_masks = dataset_has_masks(dataset)
    if task is Task.SEGMENTATION and not has_masks:
        raise RlipError("this model segments but the dataset has no masks to attack or score against")
    pixel_ok = has_masks and _can_segment(model)
    obj = _objective(task, objective, pixel_ok)
    if preset is not None:
        attacks = protocol_attacks(preset, task, pixel_ok, obj)
    names = resolve_attacks(attacks, task, pixel_ok, obj, norm)
    n_used = _sample_count(dataset, n)
    return Plan(
        task=task, norm=norm, eps=eps_values, names=names, objective=obj, pixel_ok=pixel_ok, n=n_used,
        steps=int(steps), alpha=alpha, seed=int(seed), batch_size=int(batch_size), ignore_index=ignore_index,
        restarts=check_restarts(names, restarts), protocol=preset,
    )  # fmt: skip

"""Attack a model over a dataset at several budgets: the payload of an `attack` record.

Metric levels (documented in the record under `levels`; scoring):
- classifiers (task "classification"): `accuracy` and `precision` (macro) are image-level over the
  image labels; `miou` is the mIoU of the model's mask (for mResNet-18 the CAM mask) against the
  dataset's masks, null when the dataset has no masks or the model cannot segment.
- segmenters (U-Nets: task "segmentation", or "image2image" models that segment): every metric is
  pixel-level over the masks: pixel accuracy, pixel macro precision, mIoU.
All three come from confusion matrices accumulated over the whole dataset (scoring.Scores,
torchmetrics conventions), one per (attack, ε). The record's `task` names the level as the first
records did: "classifier" or "segmenter" (records.ATTACK_TASK_NAMES).

Worst case (attack "worst", several attacks and no protocol; as SEA, Croce et al. 2024): per image, the
adversarial example of the attack that hurts most is kept — for classifiers with objective "cls"
the first one that flips the label (ties: lowest pixel accuracy of the mask), otherwise the one
with the lowest per-image pixel accuracy (ties: a flipped image label) — and the metrics are
computed on those images.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import Dataset

from robustbench_lip.attacks.base import check_budget, check_norm, fast_argmax
from robustbench_lip.attacks.eps import format_eps
from robustbench_lip.attacks.registry import ATTACKS, DEFAULT_STEPS, protocol_default_steps
from robustbench_lip.attacks.segmentation import IGNORE_INDEX, pixel_logits_fn
from robustbench_lip.device import eval_mode, preserved_rng, resolve_device
from robustbench_lip.errors import RlipError
from robustbench_lip.evaluation.runners import (
    check_restarts,
    make_runner,
    misfit,
    offer,
    protocol_attacks,
    result_fields,
)
from robustbench_lip.metrics import per_sample_accuracy
from robustbench_lip.records.schema import ATTACK_TASK_NAMES
from robustbench_lip.scoring import Level, Predictor, Scores, batches, dataset_has_masks
from robustbench_lip.tasks import Task, scored_task, task_of

logger = logging.getLogger(__name__)

OBJECTIVES: tuple[str, ...] = ("cls", "pixel")

Progress = Callable[[int, int], None]
Runner = Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]
Pred = tuple[torch.Tensor | None, torch.Tensor | None]


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


def _check_label_spaces(dataset: Dataset, task: Task, num_classes: int, num_mask: int | None) -> None:
    """One-line errors when the model's label spaces cannot hold the dataset's labels."""
    info = getattr(dataset, "info", None)
    if info is None:
        return
    name = getattr(info, "name", "the dataset")
    if task is Task.CLASSIFICATION and num_classes < int(info.num_classes):
        raise RlipError(f"the model predicts {num_classes} classes but {name} has {info.num_classes}")
    if num_mask is not None and info.num_mask_classes and num_mask < int(info.num_mask_classes):
        raise RlipError(
            f"the model predicts {num_mask} mask classes but {name} has {info.num_mask_classes}; "
            "attack it on the dataset it was trained for"
        )


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
    """A checked attack request: what to run on which samples (built by keyword only)."""

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
    return Plan(
        task=task, norm=norm, eps=eps_values, names=names, objective=obj, pixel_ok=pixel_ok,
        n=_sample_count(dataset, n), steps=int(steps), alpha=alpha, seed=int(seed), protocol=preset,
        batch_size=int(batch_size), ignore_index=ignore_index, restarts=check_restarts(names, restarts),
    )  # fmt: skip


def _harm(
    plan: Plan, pred: Pred, y: torch.Tensor, m: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(primary, tie-break) harm per image: label flip and pixel error, in the plan's order."""
    lbl, mask = pred
    wrong = (
        (lbl != y).double()
        if lbl is not None
        else torch.zeros(y.shape[0], dtype=torch.float64, device=y.device)
    )
    perr = (
        (1 - per_sample_accuracy(mask, m, plan.ignore_index))
        if mask is not None and m is not None
        else torch.zeros_like(wrong)
    )
    return (wrong, perr) if plan.image_objective else (perr, wrong)


class _Worst:
    """Per image, the predictions of the most harmful attack so far (see the module docstring)."""

    def __init__(self) -> None:
        self.harm: tuple[torch.Tensor, torch.Tensor] | None = None
        self.pred: list[torch.Tensor | None] = [None, None]

    def offer(self, h: tuple[torch.Tensor, torch.Tensor], pred: Pred) -> None:
        if self.harm is None:
            self.harm, self.pred = h, list(pred)
            return
        best = self.harm
        better = (h[0] > best[0]) | ((h[0] == best[0]) & (h[1] > best[1]))
        self.harm = (torch.where(better, h[0], best[0]), torch.where(better, h[1], best[1]))
        self.pred = [
            None if p is None else torch.where(better.view(-1, *([1] * (p.dim() - 1))), p, q)
            for p, q in zip(pred, self.pred, strict=True)
        ]


class _Cells:
    """The Scores of the clean cell and of every (ε, attack) cell, made at the first batch."""

    def __init__(self, plan: Plan, model: torch.nn.Module, dataset: Dataset, pixel_fn: Any) -> None:
        self.plan, self.model, self.dataset, self.pixel_fn = plan, model, dataset, pixel_fn
        self.clean: Scores | None = None
        self.cells: dict[tuple[float, str], Scores] = {}

    def ensure(self, x: torch.Tensor) -> None:
        if self.clean is not None:
            return
        plan = self.plan
        with torch.no_grad():
            num_classes = int(self.model(x[:1]).shape[1]) if plan.task is Task.CLASSIFICATION else 0
            num_mask = int(self.pixel_fn(x[:1]).shape[1]) if self.pixel_fn is not None else None
        _check_label_spaces(self.dataset, plan.task, num_classes, num_mask)
        level = Level.IMAGE if plan.task is Task.CLASSIFICATION else Level.PIXEL
        keys = plan.cells + ([(e, "worst") for e in plan.eps] if plan.with_worst else [])
        self.clean = Scores(level, num_classes, num_mask, plan.ignore_index)
        self.cells = {k: Scores(level, num_classes, num_mask, plan.ignore_index) for k in keys}


def _results(plan: Plan, cells: _Cells, runners: dict[tuple[float, str], Any]) -> list[dict[str, Any]]:
    out = []
    for (e, a), scores in cells.cells.items():
        row = {"attack": a, "norm": plan.norm, "eps": e, "eps_text": format_eps(e)}
        out.append({**row, **result_fields(plan, a, e, runners.get((e, a)), scores.summary())})
    out.sort(key=lambda r: plan.eps.index(r["eps"]))
    return out


def _payload(plan: Plan, cells: _Cells, runners: dict[tuple[float, str], Any]) -> dict[str, Any]:
    assert cells.clean is not None
    levels = (
        {"accuracy": "image", "precision": "image", "miou": "pixel" if plan.pixel_ok else None}
        if plan.task is Task.CLASSIFICATION
        else {"accuracy": "pixel", "precision": "pixel", "miou": "pixel"}
    )
    return {
        "clean": cells.clean.summary(),
        "results": _results(plan, cells, runners),
        "n": plan.n,
        "objective": plan.objective,
        "task": ATTACK_TASK_NAMES[plan.task],
        "attacks": plan.names,
        "levels": levels,
        "ignore_index": plan.ignore_index,
        "protocol": plan.protocol,
        "steps": plan.steps,
        "restarts": plan.restarts,
    }


def evaluate_attacks(
    model: torch.nn.Module,
    dataset: Dataset,
    eps_list: Sequence[float],
    attacks: str | Sequence[str] = "pgd",
    norm: str = "linf",
    steps: int | None = DEFAULT_STEPS,
    alpha: float | None = None,
    n: int | None = None,
    batch_size: int = 64,
    seed: int = 0,
    objective: str | None = None,
    device: str | torch.device = "cpu",
    progress: Progress | None = None,
    ignore_index: int | None = IGNORE_INDEX,
    preset: str | None = None,
    restarts: int = 1,
) -> dict[str, Any]:
    """Clean and attacked metrics of `model` on the first `n` samples of `dataset`, per ε and attack.

    dataset items: (image (C, H, W) in [0, 1], label, mask (H, W) int64 or None). attacks: names
    registered in attacks.registry, or "all"; norm "linf" | "l2"; alpha: step size (default
    2.5·ε/steps, per ε);
    objective: "cls" (image-label CE, classifiers only) or "pixel" (pixel CE on mask_logits);
    default "cls" for classifiers, "pixel" for segmenters (segpgd/cospgd always use pixels).
    n larger than the dataset is clamped (logged). The model is moved to `device` and evaluated in
    eval mode; its modes and the global RNG are restored afterwards. progress(done, total) is
    called after every (batch, ε, attack). preset: a protocol (attacks.registry.protocols) replacing
    `attacks`; restarts: of sea; random streams and SEA: evaluation.runners.
    Returns {"clean": {accuracy, precision, miou}, "results": [{attack, norm, eps, eps_text, steps,
    alpha, restarts, protocol, accuracy, precision, miou}, ...], "n", "objective", "task", "levels",
    "ignore_index", "protocol", "steps", "restarts"}.
    """
    plan = plan_attacks(
        model, dataset, eps_list, attacks, norm, steps, alpha, n, batch_size, seed, objective, ignore_index,
        preset, restarts,
    )  # fmt: skip
    dev = resolve_device(device)
    model.to(dev)
    pixel_fn = pixel_logits_fn(model) if plan.pixel_ok or plan.task is Task.SEGMENTATION else None
    predict = Predictor(
        labels=(lambda x: model(x).argmax(1)) if plan.task is Task.CLASSIFICATION else None,
        mask=(lambda x: fast_argmax(pixel_fn(x), 1)) if pixel_fn is not None else None,
    )
    runners = {cell: make_runner(model, plan, cell[1], cell[0], pixel_fn) for cell in plan.cells}
    cells = _Cells(plan, model, dataset, pixel_fn)
    total_units = math.ceil(plan.n / plan.batch_size) * len(plan.cells)
    done = 0
    with eval_mode(model), preserved_rng():
        for x, y, m in batches(dataset, plan.n, plan.batch_size):
            x, y = x.to(dev), y.to(dev)
            m = m.to(dev) if m is not None else None
            lbl, mask = predict(x)
            cells.ensure(x)
            cells.clean.update(lbl, y, mask, m)  # type: ignore[union-attr]
            for e in plan.eps:
                worst = _Worst()
                for a in plan.names:
                    adv = runners[(e, a)](x, y, m)
                    offer(runners, e, a, adv)  # SEA runs last and takes over the points it shares
                    pred = predict(adv)
                    cells.cells[(e, a)].update(pred[0], y, pred[1], m)
                    if plan.with_worst:
                        worst.offer(_harm(plan, pred, y, m), pred)
                    done += 1
                    if progress is not None:
                        progress(done, total_units)
                if plan.with_worst:
                    cells.cells[(e, "worst")].update(worst.pred[0], y, worst.pred[1], m)
    return _payload(plan, cells, runners)

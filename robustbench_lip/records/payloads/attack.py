"""The attack record's payload (one result per attack × ε, plus "worst") and the eval record's."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from robustbench_lip.errors import RlipError
from robustbench_lip.records.payloads.base import Payload
from robustbench_lip.records.payloads.metrics import CleanMetrics

#: How an attack record's `task` names its scoring level → the default objective of that task.
DEFAULT_OBJECTIVE: dict[str, str] = {"classifier": "cls", "segmenter": "pixel"}
#: How an attack record's `task` names its scoring level → the level of its accuracy / precision.
TASK_LEVEL: dict[str, str] = {"classifier": "image", "segmenter": "pixel"}


@dataclass(kw_only=True)
class AttackResult(Payload):
    """One attack at one budget: attack name ("worst" = the per-image worst case), norm, ε (pixel
    units, and its text), steps / α / restarts as run, the protocol (`--preset`) or None, and the
    attacked accuracy / precision / mIoU (at the record's `levels`); `members` for "worst"."""

    attack: str | None = None
    norm: str | None = None
    eps: float | None = None
    eps_text: str | None = None
    steps: int | None = None
    alpha: float | None = None
    restarts: int | None = None
    protocol: str | None = None
    accuracy: float | None = None
    precision: float | None = None
    miou: float | None = None
    members: list[str] | None = None


@dataclass(kw_only=True)
class Levels(Payload):
    """The level each metric is scored at: "image" (labels) or "pixel" (masks), None when absent."""

    accuracy: str | None = None
    precision: str | None = None
    miou: str | None = None


@dataclass(kw_only=True)
class AttackPayload(Payload):
    """kind "attack" (see records.schema.AttackRecord)."""

    NESTED: ClassVar[dict[str, type[Payload]]] = {"clean": CleanMetrics, "levels": Levels}
    LISTS: ClassVar[dict[str, type[Payload]]] = {"results": AttackResult}
    REQUIRED: ClassVar[tuple[str, ...]] = ("results",)
    clean: CleanMetrics | None = None
    results: list[AttackResult] | None = None
    n: int | None = None
    objective: str | None = None
    task: str | None = None
    attacks: list[str] | None = None
    levels: Levels | None = None
    ignore_index: int | None = None
    protocol: str | None = None
    steps: int | None = None
    restarts: int | None = None

    def check(self, where: str) -> None:
        """`results` is a list (possibly empty)."""
        if self.results is None:
            raise RlipError(f"{where} whose 'results' is not a list")

    @property
    def level(self) -> str | None:
        """Level of the accuracy / precision results: "image", "pixel", or None when unsaid."""
        level = self.levels.accuracy if self.levels is not None else None
        if level in ("image", "pixel"):
            return level
        return TASK_LEVEL.get(self.task) if isinstance(self.task, str) else None


@dataclass(kw_only=True)
class EvalPayload(Payload):
    """kind "eval": plain metrics of a model on a dataset."""

    metrics: dict[str, Any] | None = None

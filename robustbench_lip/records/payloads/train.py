"""The train record's payload: status, per-epoch history, final metrics, penalty settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from robustbench_lip.errors import RlipError
from robustbench_lip.records.payloads.base import Payload


@dataclass(kw_only=True)
class EpochMetrics(Payload):
    """One epoch of training (history entry) or the final test-split metrics (`final`): losses,
    clean metrics, the penalised spectral norms σ of A and R (mean / max over the sampled points),
    whether the model collapsed to a constant prediction."""

    epoch: int | None = None
    lr: float | None = None
    train_loss: float | None = None
    train_penalty: float | None = None
    train_sigma_mean: float | None = None
    train_sigma_max: float | None = None
    train_time_s: float | None = None
    images_per_s: float | None = None
    accuracy: float | None = None
    precision: float | None = None
    miou: float | None = None
    sigma_A_mean: float | None = None
    sigma_A_max: float | None = None
    sigma_R_mean: float | None = None
    sigma_R_max: float | None = None
    collapsed: bool | None = None


@dataclass(kw_only=True)
class TrainPayload(Payload):
    """kind "train": status ("running" | "finished" | "failed" | "interrupted"), history (one
    EpochMetrics per epoch), final (EpochMetrics on the test split), penalty (the penalty config),
    error (a failed run's message; written only then)."""

    NESTED: ClassVar[dict[str, type[Payload]]] = {"final": EpochMetrics}
    LISTS: ClassVar[dict[str, type[Payload]]] = {"history": EpochMetrics}
    OPTIONAL: ClassVar[tuple[str, ...]] = ("error",)
    status: str | None = None
    history: list[EpochMetrics] | None = None
    final: EpochMetrics | None = None
    penalty: dict[str, Any] | None = None
    error: str | None = None

    def check(self, where: str) -> None:
        """A train record states its status."""
        if self.status is None:
            raise RlipError(f"{where} without a 'status'")

"""The smoothed certify record's `smoothing` payload (randomized smoothing, probabilistic)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from robustbench_lip.records.payloads.base import Payload
from robustbench_lip.records.payloads.metrics import CleanMetrics, EpsMap


@dataclass(kw_only=True)
class SmoothedTask(Payload):
    """One task's smoothing certificate (`smoothing.classification` / `.segmentation`;
    evaluations.smoothing.summary.SmoothingSummary): Monte Carlo settings, per-image results, and per
    radius r (`EpsMap`, ℓ2, pixel units) the certified accuracy / mIoU / pixel accuracy and the pixel
    abstention rate; `abstention_rate` a fraction of images (classification) or pixels (segmentation)."""

    NESTED: ClassVar[dict[str, type[Payload]]] = {"clean": CleanMetrics}
    task: str | None = None
    sigma: float | None = None
    alpha: float | None = None
    n0: int | None = None
    n: int | None = None
    n_images: int | None = None
    radii: list[float] | None = None
    batch_size: int | None = None
    seed: int | None = None
    correction: str | None = None
    rule: str | None = None
    forward: str | None = None
    num_classes: int | None = None
    labels: list[Any] | None = None
    predictions: list[Any] | None = None
    sample_radii: list[Any] | None = None
    p_lower: list[Any] | None = None
    certified_accuracy: EpsMap | None = None
    certified_miou: EpsMap | None = None
    certified_pixel_accuracy: EpsMap | None = None
    pixel_abstention_rate: EpsMap | None = None
    abstention_rate: float | None = None
    clean: CleanMetrics | None = None
    wall_s: float | None = None
    notes: list[str] | None = None


@dataclass(kw_only=True)
class SmoothingPayload(Payload):
    """`smoothing`: noise σ, level α, Monte Carlo sizes n / n0, seed, batch size, each task's
    certificate (None when not run) and where the masks came from (`masks`: source, reason)."""

    NESTED: ClassVar[dict[str, type[Payload]]] = {
        "classification": SmoothedTask,
        "segmentation": SmoothedTask,
    }
    sigma: float | None = None
    alpha: float | None = None
    n: int | None = None
    n0: int | None = None
    seed: int | None = None
    batch_size: int | None = None
    classification: SmoothedTask | None = None
    segmentation: SmoothedTask | None = None
    masks: dict[str, Any] | None = None

    def task(self, name: str) -> SmoothedTask | None:
        """The certificate of task `name` ("classification" / "segmentation"), None when absent."""
        return {"classification": self.classification, "segmentation": self.segmentation}.get(name)

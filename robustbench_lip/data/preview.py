"""A PNG grid of dataset images with their masks overlaid (matplotlib, Agg canvas, atomic write)."""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch

from robustbench_lip.data.base import RlipDataset
from robustbench_lip.errors import RlipError
from robustbench_lip.io import atomic_path

# Overlay colours for mask labels 1, 2, ... (cycled); background is left uncoloured.
_PALETTE = (
    (0.90, 0.10, 0.10),
    (0.10, 0.60, 0.95),
    (0.10, 0.80, 0.20),
    (0.95, 0.75, 0.05),
    (0.75, 0.20, 0.85),
    (0.05, 0.85, 0.80),
    (0.95, 0.45, 0.05),
    (0.55, 0.35, 0.15),
    (0.95, 0.40, 0.70),
    (0.45, 0.45, 0.95),
)


def overlay(image: torch.Tensor, mask: torch.Tensor | None, alpha: float = 0.45) -> torch.Tensor:
    """RGB (H,W,3) float in [0,1]: `image` (C,H,W) with mask labels > 0 tinted by label colour."""
    rgb = image.expand(3, -1, -1) if image.shape[0] == 1 else image[:3]
    rgb = rgb.permute(1, 2, 0).clone()
    if mask is not None:
        for label in mask.unique().tolist():
            if label <= 0:
                continue
            colour = torch.tensor(_PALETTE[(label - 1) % len(_PALETTE)])
            sel = mask == label
            rgb[sel] = (1 - alpha) * rgb[sel] + alpha * colour
    return rgb.clamp(0, 1)


def render_preview(
    ds: RlipDataset,
    out: str | os.PathLike[str],
    n: int = 16,
    indices: list[int] | None = None,
    dpi: int = 100,
) -> Path:
    """Write a PNG grid of `n` samples of `ds` (image left, image with mask overlay right, label as
    title) to `out` atomically; returns the path. `indices` picks the samples (default: the first n)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise RlipError(f"--n must be an integer ≥ 1, got {n!r}")
    if len(ds) == 0:
        raise RlipError(f"dataset {ds.info.name!r} has no samples to preview")
    idx = list(indices) if indices is not None else list(range(min(n, len(ds))))
    out = Path(out)
    if out.suffix.lower() != ".png":
        raise RlipError(f"the preview is a PNG file; give --out a .png name, got {out.name!r}")
    if out.is_dir():
        raise RlipError(f"--out {out} is a folder; give a .png file name")
    info = ds.info
    names = info.class_names
    cols = min(4, len(idx))
    rows = math.ceil(len(idx) / cols)
    panels = 2 if info.has_masks else 1
    fig = Figure(figsize=(cols * panels * 1.6, rows * 1.8), dpi=dpi)
    FigureCanvasAgg(fig)
    for j, i in enumerate(idx):
        image, label, mask = ds[i]
        r, c = divmod(j, cols)
        title = names[int(label)] if 0 <= int(label) < len(names) else str(int(label))
        ax = fig.add_subplot(rows, cols * panels, r * cols * panels + c * panels + 1)
        ax.imshow(overlay(image, None).numpy(), interpolation="nearest")
        ax.set_title(f"#{i} {title}", fontsize=7)
        ax.axis("off")
        if panels == 2:
            ax2 = fig.add_subplot(rows, cols * panels, r * cols * panels + c * panels + 2)
            ax2.imshow(overlay(image, mask).numpy(), interpolation="nearest")
            ax2.set_title("mask", fontsize=7)
            ax2.axis("off")
    fig.suptitle(f"{info.name} ({len(ds)} samples)", fontsize=9)
    fig.tight_layout()
    with atomic_path(out) as tmp:
        try:
            fig.savefig(tmp, format="png")
        except OSError as e:
            raise RlipError(f"cannot write {out}: {e.strerror or e}") from None
    return out

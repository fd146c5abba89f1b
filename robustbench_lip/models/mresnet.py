"""mResNet-18: a CIFAR-style ResNet-18 whose head gives class-score maps (CAM segmentation).

The head is a 1×1 convolution applied *before* global average pooling, so
`logits = class_maps(x).mean((2, 3))` holds exactly (the CAM identity), and the class maps,
upsampled bilinearly to the input size, segment the image ("self-supervised segmentation from a
classifier"). Only non-inplace ReLUs and ops with double-backward support are used, so Jacobian
penalties can be differentiated.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from robustbench_lip.errors import RlipError
from robustbench_lip.models.cam import check_mask_classes
from robustbench_lip.models.registry import RlipModel, build, register_model

NORMS = ("bn", "none")
STEMS = ("auto", "cifar", "imagenet")


def _norm(kind: str, channels: int) -> nn.Module:
    return nn.BatchNorm2d(channels) if kind == "bn" else nn.Identity()


class BasicBlock(nn.Module):
    """Two 3×3 convs with a residual connection (1×1 conv shortcut when the shape changes)."""

    def __init__(self, cin: int, cout: int, stride: int, norm: str) -> None:
        super().__init__()
        bias = norm == "none"
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=bias)
        self.bn1 = _norm(norm, cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, stride=1, padding=1, bias=bias)
        self.bn2 = _norm(norm, cout)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride=stride, bias=bias), _norm(norm, cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class MResNet(RlipModel):
    """ResNet-18 (blocks 2-2-2-2, widths w, 2w, 4w, 8w) with a 1×1-conv class-map head.

    forward(x (N, C, H, W) in [0, 1]) -> logits (N, K). Other outputs: `class_maps` (N, K, h, w) at
    feature resolution (H/8 for the CIFAR stem); `segment` (N, K, H, W); `predict_mask` / `mask_logits`
    in the mask label space (0 = background; class k → label k + offset, offset = M − K ∈ {0, 1};
    with offset 0 class 0 means "nothing" and is background).

    stem "cifar": 3×3 conv, stride 1, no max-pool; "imagenet": 7×7 stride-2 conv + 3×3 max-pool;
    "auto": cifar when max(H, W) ≤ 64. norm "bn" (BatchNorm) or "none" (convs with bias).
    """

    def __init__(
        self,
        *,
        arch: str,
        in_channels: int = 3,
        num_classes: int = 10,
        image_size: Sequence[int] = (32, 32),
        mean: Sequence[float] = (),
        std: Sequence[float] = (),
        num_mask_classes: int | None = None,
        width: int = 64,
        norm: str = "bn",
        stem: str = "auto",
        blocks: Sequence[int] = (2, 2, 2, 2),
    ) -> None:
        if norm not in NORMS:
            raise RlipError(f"{arch}: norm must be one of {', '.join(NORMS)}, got {norm!r}")
        if stem not in STEMS:
            raise RlipError(f"{arch}: stem must be one of {', '.join(STEMS)}, got {stem!r}")
        width = int(width)
        blocks = tuple(int(b) for b in blocks)
        if width < 1 or len(blocks) != 4 or min(blocks) < 1:
            raise RlipError(f"{arch}: width must be ≥ 1 and blocks four positive integers")
        k = int(num_classes)
        m = check_mask_classes(arch, k, num_mask_classes)
        super().__init__(
            arch=arch,
            task="classification",
            in_channels=in_channels,
            num_classes=k,
            image_size=image_size,
            mean=mean,
            std=std,
            num_mask_classes=m,
            reflection_defined=False,
            kwargs={"width": width, "norm": norm, "stem": stem, "blocks": list(blocks)},
        )
        c = self.config.in_channels
        h, w = self.config.input_size[1:]
        self.mask_offset = m - k
        use_cifar = stem == "cifar" or (stem == "auto" and max(h, w) <= 64)
        bias = norm == "none"
        if use_cifar:
            self.stem = nn.Sequential(
                nn.Conv2d(c, width, 3, padding=1, bias=bias), _norm(norm, width), nn.ReLU()
            )
        else:
            self.stem = nn.Sequential(
                nn.Conv2d(c, width, 7, stride=2, padding=3, bias=bias),
                _norm(norm, width),
                nn.ReLU(),
                nn.MaxPool2d(3, stride=2, padding=1),
            )
        stages = []
        cin = width
        for i, n in enumerate(blocks):
            cout = width * 2**i
            layers = [
                BasicBlock(cin if j == 0 else cout, cout, (1 if i == 0 else 2) if j == 0 else 1, norm)
                for j in range(n)
            ]
            stages.append(nn.Sequential(*layers))
            cin = cout
        self.layers = nn.Sequential(*stages)
        self.head = nn.Conv2d(cin, k, 1)

    def class_maps(self, x: torch.Tensor) -> torch.Tensor:
        """Class-score maps (N, K, h, w) at feature resolution; their spatial mean is the logits."""
        return self.head(self.layers(self.stem(self.normalize(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N, K) = spatial mean of the class maps."""
        return self.class_maps(x).mean(dim=(2, 3))

    def segment(self, x: torch.Tensor) -> torch.Tensor:
        """Class-score maps upsampled bilinearly (align_corners=False) to the input size: (N, K, H, W)."""
        return F.interpolate(self.class_maps(x), size=x.shape[-2:], mode="bilinear", align_corners=False)

    def _normalised_maps(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(predicted class (N,), upsampled maps (N, K, H, W) min-max normalised per image and class)."""
        maps = self.class_maps(x)
        pred = maps.mean(dim=(2, 3)).argmax(dim=1)
        up = F.interpolate(maps, size=x.shape[-2:], mode="bilinear", align_corners=False)
        lo = up.amin(dim=(2, 3), keepdim=True)
        hi = up.amax(dim=(2, 3), keepdim=True)
        return pred, (up - lo) / (hi - lo).clamp_min(1e-12)

    def predict_mask(self, x: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
        """Label map (N, H, W) int64: label pred + offset where the predicted class's normalised
        map exceeds `threshold`, 0 (background) elsewhere."""
        with torch.no_grad():
            pred, norm = self._normalised_maps(x)
            sel = norm.gather(1, pred.view(-1, 1, 1, 1).expand(-1, 1, *norm.shape[-2:])).squeeze(1)
            labels = (pred + self.mask_offset).view(-1, 1, 1).expand_as(sel)
            return torch.where(sel > threshold, labels, torch.zeros_like(labels))

    def mask_logits(self, x: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
        """Differentiable mask scores (N, M, H, W) whose argmax over dim 1 equals `predict_mask`.

        Channel 0 (background) is the constant `threshold`; the channel of the predicted class holds
        its normalised map (in [0, 1]); every other class channel holds its normalised map minus
        (2 + |threshold|), which is below both. Ties go to background, as in `predict_mask` (strict >).
        With offset 0, class 0 has no channel of its own (it is background).
        """
        threshold = float(threshold)
        pred, norm = self._normalised_maps(x)
        is_pred = F.one_hot(pred, norm.shape[1]).to(norm.dtype).view(*pred.shape, -1, 1, 1)
        scores = norm - (1.0 - is_pred) * (2.0 + abs(threshold))
        if self.mask_offset == 0:
            scores = scores[:, 1:]
        bg = torch.full_like(norm[:, :1], threshold)
        return torch.cat([bg, scores], dim=1)


def _factory(arch: str, defaults: dict[str, Any], overrides: dict[str, Any]) -> MResNet:
    return build(MResNet, arch, defaults, overrides)  # type: ignore[return-value]


@register_model(task="classification")
def mresnet18(**overrides: Any) -> MResNet:
    """mResNet-18, width 64 (the classic CIFAR ResNet-18 size, ~11M parameters; for GPU)."""
    return _factory("mresnet18", {"width": 64}, overrides)


@register_model(task="classification")
def mresnet18_w16(**overrides: Any) -> MResNet:
    """mResNet-18, width 16 (~0.7M parameters; the CPU default)."""
    return _factory("mresnet18_w16", {"width": 16}, overrides)


@register_model(task="classification")
def mresnet18_w8(**overrides: Any) -> MResNet:
    """mResNet-18, width 8 (~0.18M parameters; fast CPU experiments)."""
    return _factory("mresnet18_w8", {"width": 8}, overrides)


@register_model(task="classification")
def mresnet18_tiny(**overrides: Any) -> MResNet:
    """mResNet-18, width 4 on 3×16×16 inputs: for tests."""
    return _factory("mresnet18_tiny", {"width": 4, "image_size": (16, 16)}, overrides)

"""`sllnet`: a 1-Lipschitz classifier on the field's recipe (Araujo et al. 2023; Prach et al. 2024,
"1-Lipschitz layers compared", CVPR), with no orthogonalisation, no convex mixing and no pooling:

    x − mean → PixelUnshuffle(2) → AOL 3×3 (4C → w) + MaxMin → `blocks` SLL 3×3 blocks
    → [PixelUnshuffle(2) → AOL 1×1 (4c → 2c) + MaxMin → `blocks` SLL blocks] × (stages − 1)
    → head

Every stage is 1-Lipschitz and keeps the signal (PixelUnshuffle is a pixel permutation; an SLL block
is x − 2·Wᵀ T σ(Wx + b), identity-like at init; layers in `sll_layers`). Heads:
- "dense": flatten (c·h·w) → orthonormal Linear → `head_width` + MaxMin → orthonormal Linear → K;
- "cam": class maps s = √(h·w)·Q φ (Q an orthonormal 1×1 conv, φ = `features`: the last grid, or
  an orthonormal 1×1 conv to `cam_hidden` channels + MaxMin on it), logits = their spatial mean,
  so ‖Δlogits‖ ≤ ‖Δφ‖ (the mean of h·w maps divides by √(h·w)); masks are the certified CAM masks
  of `LipResNet` (`CamMasks`). On `shapes` the CAM head costs ≈ 30 points of certified accuracy
  against the dense head (README): both are registered.
Inputs are centred by the dataset mean, never divided by std (that would multiply the constant).
Needs H, W divisible by 2^stages.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from robustbench_lip.errors import RlipError
from robustbench_lip.models.cam import CamMasks, check_mask_classes
from robustbench_lip.models.lip_layers import MaxMin
from robustbench_lip.models.registry import RlipModel, build, register_model
from robustbench_lip.models.sll_layers import AOLConv2d, OrthoConv1x1, OrthoLinear, SLLConv2d

HEADS = ("dense", "cam")


def _stage(cin: int, cout: int, kernel: int, blocks: int) -> nn.Sequential:
    return nn.Sequential(AOLConv2d(cin, cout, kernel), MaxMin(), *[SLLConv2d(cout) for _ in range(blocks)])


class SLLNet(CamMasks, RlipModel):
    """forward(x (N, C, H, W) in [0, 1]) → logits (N, K). `features(x)`: the last feature grid
    (N, c, H/2^s, W/2^s), c = w·2^(s−1). With head "cam": `class_maps`, `segment`, `mask_logits`,
    `predict_mask` as `LipResNet` (mask = argmax of [τ, upsampled class maps])."""

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
        width: int = 16,
        blocks: int = 2,
        stages: int = 3,
        head: str = "dense",
        head_width: int = 128,
        mask_threshold: float = 0.0,
        cam_hidden: int = 0,
    ) -> None:
        width, blocks, stages, head_width = int(width), int(blocks), int(stages), int(head_width)
        cam_hidden = int(cam_hidden)
        if cam_hidden < 0 or cam_hidden % 2:
            raise RlipError(f"{arch}: cam_hidden must be 0 (none) or an even number of channels")
        if width < 2 or width % 2 or blocks < 0 or stages < 1 or head_width < 2 or head_width % 2:
            raise RlipError(f"{arch}: width and head_width must be even ≥ 2, blocks ≥ 0, stages ≥ 1")
        if head not in HEADS:
            raise RlipError(f"{arch}: head must be one of {', '.join(HEADS)}, got {head!r}")
        k = int(num_classes)
        m = check_mask_classes(arch, k, num_mask_classes) if head == "cam" else None
        kwargs = {"width": width, "blocks": blocks, "stages": stages, "head": head}
        if head == "dense":
            kwargs["head_width"] = head_width
        else:
            kwargs |= {"mask_threshold": float(mask_threshold), "cam_hidden": cam_hidden}
        super().__init__(
            arch=arch,
            task="classification",
            in_channels=in_channels,
            num_classes=k,
            image_size=image_size,
            mean=mean,
            std=(),
            num_mask_classes=m,
            reflection_defined=False,
            kwargs=kwargs,
        )
        c, h, w = self.config.input_size
        self.multiple = 2**stages
        if h % self.multiple or w % self.multiple:
            raise RlipError(f"{arch}: image size {h}×{w} is not divisible by 2^stages = {self.multiple}")
        self.unshuffle = nn.PixelUnshuffle(2)
        layers = [_stage(4 * c, width, 3, blocks)]
        ch = width
        for _ in range(stages - 1):
            layers.append(_stage(4 * ch, 2 * ch, 1, blocks))
            ch *= 2
        self.stages = nn.ModuleList(layers)
        grid = (h // self.multiple) * (w // self.multiple)
        self.neck: nn.Module = nn.Identity()
        if head == "cam":
            self.mask_offset = (m or k) - k
            self.mask_threshold = float(mask_threshold)
            if cam_hidden:
                self.neck = nn.Sequential(OrthoConv1x1(ch, cam_hidden), MaxMin())
                ch = cam_hidden
            self.head = OrthoConv1x1(ch, k, scale=math.sqrt(grid))
        else:
            self.head = nn.Sequential(
                nn.Flatten(), OrthoLinear(ch * grid, head_width), MaxMin(), OrthoLinear(head_width, k)
            )
        self.head_kind = head

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The input of the head: the last feature grid (N, c, H/2^s, W/2^s) (after the 1×1 layer +
        MaxMin of width cam_hidden when the CAM head has one)."""
        h = self.normalize(x)
        for stage in self.stages:
            h = stage(self.unshuffle(h))
        return self.neck(h)

    def class_maps(self, x: torch.Tensor) -> torch.Tensor:
        """Class-score maps (N, K, h, w) of the CAM head; their spatial mean is the logits."""
        if self.head_kind != "cam":
            raise RlipError(f"{self.config.arch} has a dense head: no class maps")
        return self.head(self.features(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N, K)."""
        if self.head_kind == "cam":
            return self.class_maps(x).mean(dim=(2, 3))
        return self.head(self.features(x))


def _net(arch: str, defaults: dict[str, Any], overrides: dict[str, Any]) -> SLLNet:
    return build(SLLNet, arch, defaults, overrides)  # type: ignore[return-value]


_TINY = {"width": 4, "blocks": 1, "image_size": (16, 16), "head_width": 16}
_TINY_CAM = {"width": 4, "blocks": 1, "image_size": (16, 16), "head": "cam"}


@register_model(task="classification", family="constrained")
def sllnet(**overrides: Any) -> SLLNet:
    """SLL/AOL 1-Lipschitz classifier, width 64, 3 SLL blocks per stage, dense head 512 (GPU)."""
    return _net("sllnet", {"width": 64, "blocks": 3, "head_width": 512}, overrides)


@register_model(task="classification", family="constrained")
def sllnet_w16(**overrides: Any) -> SLLNet:
    """SLL/AOL 1-Lipschitz classifier, width 16, 2 SLL blocks per stage, dense head 128 (CPU; ≈ 242k
    parameters at 3×32×32)."""
    return _net("sllnet_w16", {"width": 16}, overrides)


@register_model(task="classification", family="constrained")
def sllnet_tiny(**overrides: Any) -> SLLNet:
    """sllnet with width 4, 1 block per stage, head 16, 3×16×16: for tests."""
    return _net("sllnet_tiny", _TINY, overrides)


@register_model(task="classification", family="constrained")
def sllnet_cam(**overrides: Any) -> SLLNet:
    """sllnet (width 64, 3 blocks) with the CAM head: certified CAM masks (GPU)."""
    return _net("sllnet_cam", {"width": 64, "blocks": 3, "head": "cam"}, overrides)


@register_model(task="classification", family="constrained")
def sllnet_cam_w16(**overrides: Any) -> SLLNet:
    """sllnet_w16 with the CAM head: certified CAM masks (CPU)."""
    return _net("sllnet_cam_w16", {"width": 16, "head": "cam"}, overrides)


@register_model(task="classification", family="constrained")
def sllnet_cam_tiny(**overrides: Any) -> SLLNet:
    """sllnet_cam with width 4, 1 block per stage, 3×16×16: for tests."""
    return _net("sllnet_cam_tiny", _TINY_CAM, overrides)

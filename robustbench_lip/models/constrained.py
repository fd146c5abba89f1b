"""Certified-by-construction models: 1-Lipschitz (ℓ2, pixel units) by their layers, with the constant
computed by the certifier from the exported graph, never assumed.

- `lipresnet18` (`_w16`, `_w8`, `_tiny`): an mResNet-18-shaped classifier (blocks 2-2-2-2, widths w,
  2w, 4w, 8w) of orthogonal convolutions and MaxMin, residual blocks α·S(x) + (1 − α)·f(x), and the
  CAM head of `mresnet18`: class maps by an orthogonal 1×1 conv, averaged into the logits. Its masks
  use a rule that can be certified: a pixel gets the class whose upsampled map is largest when that
  exceeds the fixed `mask_threshold`, else background (no per-image normalisation).
- `unet_lip` (`_tiny`): a 1-Lipschitz image-to-image U-Net N (orthogonal stride-2 convs down,
  orthogonal stride-2 transposed convs up, skips joined by cat([cos θ·skip, sin θ·up])).
- `unet_fne` (`_tiny`): A(x) = (x + (1 − 1e-3)·N(x)) / 2 with N as in `unet_lip`, so that
  R = 2A − I = (1 − 1e-3)·N: A is firmly non-expansive when the certifier finds U(N) ≤ 1/(1 − 1e-3).

Inputs are centred by the dataset mean inside the model; `std` is accepted for the common
constructor signature but not applied (dividing by std < 1 would multiply the constant), so the
config records std = (). Constructors, configs and masks follow `mresnet18` / `unet_i2i`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from robustbench_lip.errors import RlipError
from robustbench_lip.models.cam import CamMasks, check_mask_classes
from robustbench_lip.models.lip_layers import (
    ConvexResidual,
    MaxMin,
    RotatedConcat,
    conv_act,
    ortho_conv,
    ortho_conv_transpose,
)
from robustbench_lip.models.registry import RlipModel, build, register_model

FNE_SHRINK = 1e-3  # N is scaled by 1 − FNE_SHRINK: room for the rounding of the orthogonal weights


def _block(cin: int, cout: int, stride: int) -> ConvexResidual:
    body = nn.Sequential(conv_act(cin, cout, 3, stride), ortho_conv(cout, cout, 3))
    short = None if (cin == cout and stride == 1) else ortho_conv(cin, cout, stride, stride, bias=False)
    return ConvexResidual(body, short)


class LipResNet(CamMasks, RlipModel):
    """1-Lipschitz mResNet-18: forward(x (N, C, H, W) in [0, 1]) → logits (N, K) = spatial mean of
    `class_maps` (N, K, H/8, W/8). `features(x)` is the input of the 1×1 head (N, 8w, H/8, W/8).

    Masks (label space of `mresnet18`: class k → label k + offset, offset = M − K): `mask_logits`
    (N, M, H, W) = cat([τ, upsampled class maps]) (with offset 0 the map of class 0 is dropped: it
    is background), τ = `mask_threshold`; `predict_mask` is its argmax. Per-pixel certified radii:
    `robustbench_lip.evaluations.lipschitz.cam_masks.cam_pixel_radii`.
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
        width: int = 16,
        blocks: Sequence[int] = (2, 2, 2, 2),
        mask_threshold: float = 0.0,
    ) -> None:
        width, blocks = int(width), tuple(int(b) for b in blocks)
        if width < 2 or width % 2 or len(blocks) != 4 or min(blocks) < 1:
            raise RlipError(f"{arch}: width must be an even number ≥ 2 and blocks four positive integers")
        k = int(num_classes)
        m = check_mask_classes(arch, k, num_mask_classes)
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
            kwargs={"width": width, "blocks": list(blocks), "mask_threshold": float(mask_threshold)},
        )
        self.mask_offset = m - k
        self.mask_threshold = float(mask_threshold)
        self.stem = conv_act(self.config.in_channels, width, 3)
        stages, cin = [], width
        for i, n in enumerate(blocks):
            cout = width * 2**i
            strides = [2 if (i and not j) else 1 for j in range(n)]
            stages.append(
                nn.Sequential(*[_block(cin if j == 0 else cout, cout, s) for j, s in enumerate(strides)])
            )
            cin = cout
        self.layers = nn.Sequential(*stages)
        self.act = MaxMin()
        self.head = ortho_conv(cin, k, 1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Input of the 1×1 head: (N, 8w, H/8, W/8)."""
        h = self.stem(self.normalize(x))
        for stage in self.layers:
            for block in stage:
                h = self.act(block(h))
        return h

    def class_maps(self, x: torch.Tensor) -> torch.Tensor:
        """Class-score maps (N, K, H/8, W/8); their spatial mean is the logits."""
        return self.head(self.features(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N, K)."""
        return self.class_maps(x).mean(dim=(2, 3))

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """Check x and centre it by the dataset mean (no division by std)."""
        self.check_input(x)
        return x - self.input_mean


class LipUNetBody(nn.Module):
    """1-Lipschitz U-Net body: (C, H, W) → (C, H, W), levels of widths base·2^i (depth + 1 levels)."""

    def __init__(self, channels: int, depth: int, base_width: int) -> None:
        super().__init__()
        widths = [base_width * 2**i for i in range(depth + 1)]
        first = nn.Sequential(conv_act(channels, widths[0]), conv_act(widths[0], widths[0]))
        self.down = nn.ModuleList([first])
        for i in range(1, depth + 1):
            self.down.append(
                nn.Sequential(conv_act(widths[i - 1], widths[i], 2, 2), conv_act(widths[i], widths[i]))
            )
        self.up = nn.ModuleList()
        self.join = nn.ModuleList()
        self.dec = nn.ModuleList()
        for i in reversed(range(depth)):
            self.up.append(ortho_conv_transpose(widths[i + 1], widths[i]))
            self.join.append(RotatedConcat())
            self.dec.append(nn.Sequential(conv_act(2 * widths[i], widths[i]), conv_act(widths[i], widths[i])))
        self.head = ortho_conv(widths[0], channels, 1)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        skips = []
        for block in self.down:
            h = block(h)
            skips.append(h)
        skips.pop()
        for up, join, dec in zip(self.up, self.join, self.dec, strict=True):
            h = dec(join(skips.pop(), up(h)))
        return self.head(h)


class LipUNet(RlipModel):
    """Image-to-image 1-Lipschitz U-Net: forward(x (N, C, H, W) in [0, 1]) → N(x) (N, C, H, W);
    `fne=True`: A(x) = (x + (1 − 1e-3)·N(x)) / 2. With one channel on a binary-mask dataset
    (num_mask_classes 2) it segments: mask = output > 0 (as `unet_i2i`). H, W divisible by 2^depth."""

    def __init__(
        self,
        *,
        arch: str,
        in_channels: int = 1,
        num_classes: int = 2,
        image_size: Sequence[int] = (32, 32),
        mean: Sequence[float] = (),
        std: Sequence[float] = (),
        num_mask_classes: int | str | None = "auto",
        depth: int = 3,
        base_width: int = 16,
        fne: bool = False,
    ) -> None:
        if num_mask_classes == "auto":
            num_mask_classes = 2 if int(in_channels) == 1 else None
        if num_mask_classes is not None and (int(num_mask_classes) != 2 or int(in_channels) != 1):
            raise RlipError(
                f"{arch}: an image-to-image U-Net segments only with 1 channel and 2 mask classes "
                f"(binary: mask = output > 0); got in_channels={in_channels}, "
                f"num_mask_classes={num_mask_classes}"
            )
        depth, base_width = int(depth), int(base_width)
        if depth < 1 or base_width < 2 or base_width % 2:
            raise RlipError(f"{arch}: depth must be ≥ 1 and base_width an even number ≥ 2")
        super().__init__(
            arch=arch,
            task="image2image",
            in_channels=in_channels,
            num_classes=num_classes,
            image_size=image_size,
            mean=mean,
            std=(),
            num_mask_classes=num_mask_classes,
            reflection_defined=True,
            kwargs={"depth": depth, "base_width": base_width, "fne": bool(fne)},
        )
        h, w = self.config.input_size[1:]
        self.multiple = 2**depth
        if h % self.multiple or w % self.multiple:
            raise RlipError(f"{arch}: image size {h}×{w} is not divisible by 2^depth = {self.multiple}")
        self.fne = bool(fne)
        self.body = LipUNetBody(self.config.in_channels, depth, base_width)

    def check_input(self, x: torch.Tensor) -> None:
        if torch.fx._symbolic_trace.is_fx_symbolic_tracing():
            return
        super().check_input(x)
        if x.shape[-2] % self.multiple or x.shape[-1] % self.multiple:
            raise RlipError(
                f"{self.config.arch} needs H and W divisible by {self.multiple}, got {tuple(x.shape[-2:])}"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        n = self.body(x - self.input_mean)
        if self.fne:
            return (x + (1.0 - FNE_SHRINK) * n) / 2
        return n

    def _require_masks(self) -> None:
        if self.config.num_mask_classes is None:
            raise RlipError(f"{self.config.arch} with {self.config.in_channels} channel(s) does not segment")

    def mask_logits(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 2, H, W) = cat([0, z]): argmax is 1 exactly where z > 0."""
        self._require_masks()
        z = self(x)
        return torch.cat([torch.zeros_like(z), z], dim=1)

    def predict_mask(self, x: torch.Tensor) -> torch.Tensor:
        """Label map (N, H, W) int64: 1 where z > 0, else 0."""
        self._require_masks()
        with torch.no_grad():
            return (self(x)[:, 0] > 0).long()


def _resnet(arch: str, defaults: dict[str, Any], overrides: dict[str, Any]) -> LipResNet:
    return build(LipResNet, arch, defaults, overrides)  # type: ignore[return-value]


@register_model(task="classification", family="constrained")
def lipresnet18(**overrides: Any) -> LipResNet:
    """1-Lipschitz mResNet-18, width 64 (for GPU)."""
    return _resnet("lipresnet18", {"width": 64}, overrides)


@register_model(task="classification", family="constrained")
def lipresnet18_w16(**overrides: Any) -> LipResNet:
    """1-Lipschitz mResNet-18, width 16 (CPU)."""
    return _resnet("lipresnet18_w16", {"width": 16}, overrides)


@register_model(task="classification", family="constrained")
def lipresnet18_w8(**overrides: Any) -> LipResNet:
    """1-Lipschitz mResNet-18, width 8 (fast CPU experiments)."""
    return _resnet("lipresnet18_w8", {"width": 8}, overrides)


@register_model(task="classification", family="constrained")
def lipresnet18_tiny(**overrides: Any) -> LipResNet:
    """1-Lipschitz mResNet-18, width 4, blocks 1-1-1-1, 3×16×16: for tests."""
    defaults = {"width": 4, "blocks": (1, 1, 1, 1), "image_size": (16, 16)}
    return _resnet("lipresnet18_tiny", defaults, overrides)


_TINY = {"depth": 2, "base_width": 4, "image_size": (16, 16)}


def _unet(arch: str, defaults: dict[str, Any], overrides: dict[str, Any]) -> LipUNet:
    if "fne" in overrides and bool(overrides["fne"]) != defaults["fne"]:
        raise RlipError(f"{arch}: fne is fixed by the architecture (unet_lip: N, unet_fne: (x + N(x))/2)")
    return build(LipUNet, arch, defaults, overrides)  # type: ignore[return-value]


@register_model(task="image2image", family="constrained")
def unet_lip(**overrides: Any) -> LipUNet:
    """1-Lipschitz image-to-image U-Net, depth 3, base width 16 (1×32×32 as `lesions`)."""
    return _unet("unet_lip", {"fne": False}, overrides)


@register_model(task="image2image", family="constrained")
def unet_lip_tiny(**overrides: Any) -> LipUNet:
    """1-Lipschitz U-Net, depth 2, base width 4, 1×16×16: for tests."""
    return _unet("unet_lip_tiny", {"fne": False, **_TINY}, overrides)


@register_model(task="image2image", family="constrained")
def unet_fne(**overrides: Any) -> LipUNet:
    """Firmly non-expansive U-Net A = (x + (1 − 1e-3)·N(x))/2, N a 1-Lipschitz U-Net (depth 3, width 16)."""
    return _unet("unet_fne", {"fne": True}, overrides)


@register_model(task="image2image", family="constrained")
def unet_fne_tiny(**overrides: Any) -> LipUNet:
    """unet_fne with depth 2, base width 4, 1×16×16: for tests."""
    return _unet("unet_fne_tiny", {"fne": True, **_TINY}, overrides)

"""U-Nets: segmentation (K-class logits) and image-to-image (output shape = input shape).

Encoder: `depth` + 1 levels of two 3×3 conv–norm–ReLU blocks with widths base·2^i, 2×2 max-pool
between levels. Decoder: upsample ×2 ("bilinear": bilinear upsampling then a 1×1 conv;
"transpose": a 2×2 stride-2 transposed conv), concatenate the skip, two 3×3 conv blocks; a 1×1 conv
head. H and W must be divisible by 2^depth. No final sigmoid: outputs are logits. Only ops with
double-backward support are used (non-inplace ReLU), so Jacobian penalties can be differentiated.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from robustbench_lip.errors import RlipError
from robustbench_lip.models.registry import RlipModel, build, register_model

NORMS = ("bn", "none")
UPSAMPLING = ("bilinear", "transpose")


def _block(cin: int, cout: int, norm: str) -> nn.Sequential:
    bias = norm == "none"
    layers: list[nn.Module] = []
    for c in (cin, cout):
        layers += [nn.Conv2d(c, cout, 3, padding=1, bias=bias)]
        layers += [nn.BatchNorm2d(cout)] if norm == "bn" else []
        layers += [nn.ReLU()]
    return nn.Sequential(*layers)


class _UNetBase(RlipModel):
    """Shared U-Net body; subclasses fix the task and the number of output channels."""

    def _build_body(self, depth: int, base_width: int, norm: str, upsampling: str, out_channels: int) -> None:
        arch = self.config.arch
        if norm not in NORMS:
            raise RlipError(f"{arch}: norm must be one of {', '.join(NORMS)}, got {norm!r}")
        if upsampling not in UPSAMPLING:
            raise RlipError(f"{arch}: upsampling must be one of {', '.join(UPSAMPLING)}, got {upsampling!r}")
        if depth < 1 or base_width < 1:
            raise RlipError(f"{arch}: depth and base_width must be ≥ 1")
        h, w = self.config.input_size[1:]
        self.multiple = 2**depth
        if h % self.multiple or w % self.multiple:
            raise RlipError(
                f"{arch}: image size {h}×{w} is not divisible by 2^depth = {self.multiple}; "
                f"use a smaller depth or resize/pad the images"
            )
        widths = [base_width * 2**i for i in range(depth + 1)]
        self.down = nn.ModuleList(
            [_block(self.config.in_channels, widths[0], norm)]
            + [_block(widths[i - 1], widths[i], norm) for i in range(1, depth + 1)]
        )
        self.up = nn.ModuleList()
        self.dec = nn.ModuleList()
        for i in reversed(range(depth)):
            if upsampling == "transpose":
                self.up.append(nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2))
            else:
                self.up.append(
                    nn.Sequential(
                        nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                        nn.Conv2d(widths[i + 1], widths[i], 1),
                    )
                )
            self.dec.append(_block(2 * widths[i], widths[i], norm))
        self.head = nn.Conv2d(widths[0], out_channels, 1)

    def check_input(self, x: torch.Tensor) -> None:
        if torch.fx._symbolic_trace.is_fx_symbolic_tracing():
            return
        super().check_input(x)
        h, w = x.shape[-2:]
        if h % self.multiple or w % self.multiple:
            ph, pw = -(-h // self.multiple) * self.multiple, -(-w // self.multiple) * self.multiple
            raise RlipError(
                f"{self.config.arch} needs H and W divisible by {self.multiple}, got {h}×{w}; "
                f"pad or resize the images to e.g. {ph}×{pw}"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.normalize(x)
        skips = []
        for i, block in enumerate(self.down):
            if i > 0:
                h = F.max_pool2d(h, 2)
            h = block(h)
            skips.append(h)
        skips.pop()
        for up, dec in zip(self.up, self.dec, strict=True):
            h = dec(torch.cat([skips.pop(), up(h)], dim=1))
        return self.head(h)


class UNet(_UNetBase):
    """Segmentation U-Net: forward(x (N, C, H, W) in [0, 1]) -> logits (N, K, H, W), K = num_classes
    = the mask classes (background 0 included); predict_mask = argmax over dim 1."""

    def __init__(
        self,
        *,
        arch: str,
        in_channels: int = 3,
        num_classes: int = 11,
        image_size: Sequence[int] = (32, 32),
        mean: Sequence[float] = (),
        std: Sequence[float] = (),
        num_mask_classes: int | None = None,
        depth: int = 3,
        base_width: int = 16,
        norm: str = "bn",
        upsampling: str = "bilinear",
    ) -> None:
        if num_mask_classes is not None and int(num_mask_classes) != int(num_classes):
            raise RlipError(
                f"{arch}: a segmentation U-Net has num_mask_classes = num_classes = {num_classes}"
            )
        depth, base_width = int(depth), int(base_width)
        super().__init__(
            arch=arch,
            task="segmentation",
            in_channels=in_channels,
            num_classes=num_classes,
            image_size=image_size,
            mean=mean,
            std=std,
            num_mask_classes=int(num_classes),
            reflection_defined=False,
            kwargs={"depth": depth, "base_width": base_width, "norm": norm, "upsampling": upsampling},
        )
        self._build_body(depth, base_width, norm, upsampling, self.config.num_classes)

    def mask_logits(self, x: torch.Tensor) -> torch.Tensor:
        """The logits (N, K, H, W) themselves."""
        return self(x)

    def predict_mask(self, x: torch.Tensor) -> torch.Tensor:
        """Label map (N, H, W) int64 = argmax of the logits."""
        with torch.no_grad():
            return self(x).argmax(dim=1)


class UNetI2I(_UNetBase):
    """Image-to-image U-Net: forward(x (N, C, H, W) in [0, 1]) -> (N, C, H, W) logits, so R = 2A − I
    is defined. With one channel on a binary-mask dataset (num_mask_classes = 2, e.g. `lesions`) it
    is a lesion logit map z: mask = z > 0, mask_logits = cat([0, z]). num_classes is the dataset's
    image-level class count (metadata only). num_mask_classes "auto": 2 for 1 channel, else None."""

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
        norm: str = "bn",
        upsampling: str = "bilinear",
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
        super().__init__(
            arch=arch,
            task="image2image",
            in_channels=in_channels,
            num_classes=num_classes,
            image_size=image_size,
            mean=mean,
            std=std,
            num_mask_classes=num_mask_classes,
            reflection_defined=True,
            kwargs={"depth": depth, "base_width": base_width, "norm": norm, "upsampling": upsampling},
        )
        self._build_body(depth, base_width, norm, upsampling, self.config.in_channels)

    def _require_masks(self) -> None:
        if self.config.num_mask_classes is None:
            raise RlipError(
                f"{self.config.arch} with {self.config.in_channels} channel(s) does not segment; "
                "only a 1-channel model built with num_mask_classes=2 (e.g. for `lesions`) does"
            )

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


@register_model(task="segmentation")
def unet(**overrides: Any) -> UNet:
    """Segmentation U-Net, depth 3, base width 16 (defaults: 3×32×32 → 11 classes, as `shapes`)."""
    return build(UNet, "unet", {}, overrides)  # type: ignore[return-value]


@register_model(task="segmentation")
def unet_tiny(**overrides: Any) -> UNet:
    """Segmentation U-Net, depth 2, base width 4, 3×16×16: for tests."""
    return build(UNet, "unet_tiny", {"depth": 2, "base_width": 4, "image_size": (16, 16)}, overrides)  # type: ignore[return-value]


@register_model(task="image2image")
def unet_i2i(**overrides: Any) -> UNetI2I:
    """Image-to-image U-Net, depth 3, base width 16 (defaults: 1×32×32 → 1×32×32, binary masks, as
    `lesions`)."""
    return build(UNetI2I, "unet_i2i", {}, overrides)  # type: ignore[return-value]


@register_model(task="image2image")
def unet_i2i_tiny(**overrides: Any) -> UNetI2I:
    """Image-to-image U-Net, depth 2, base width 4, 1×16×16 binary: for tests."""
    defaults = {"depth": 2, "base_width": 4, "image_size": (16, 16)}
    return build(UNetI2I, "unet_i2i_tiny", defaults, overrides)  # type: ignore[return-value]

"""`lesions`: generated grayscale scan-like images with 0–3 lesions and their binary mask.

A dark field holds a soft-edged body ellipse with two to four organ-like ellipses of different
intensity, a multiplicative low-frequency tissue texture and acquisition noise. With probability
1/2 the image has no lesion, else 1, 2 or 3 (equally likely): blobs with irregular outlines
(radius modulated by random harmonics 2–4), soft edges of random width and a random contrast
(brighter in 3 of 4 cases, else darker). Mask = 1 where a lesion's outline covers the pixel centre;
label = 1 iff the mask has a lesion pixel. 8-bit quantised (stored uint8), 1×S×S, S in [16, 256].

Generation is vectorised over chunks of images with a local torch.Generator seeded from (seed,
split, image size, chunk index) by SHA-256, so the same options give bit-identical tensors.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from robustbench_lip.data.base import generate_chunked

CLASS_NAMES: tuple[str, ...] = ("no_lesion", "lesion")
MASK_CLASS_NAMES: tuple[str, ...] = ("background", "lesion")
# Mean / std of the default train split (seed 0, 32×32, 2000 images), measured once and fixed so
# that every split, seed and size normalises the same way (tests re-measure them).
MEAN: tuple[float] = (0.216,)
STD: tuple[float] = (0.167,)


def chunk_size(image_size: int) -> int:
    """Images generated per chunk (bounded memory: ~2^17 pixels per chunk)."""
    return max(4, (1 << 17) // (image_size * image_size))


def _smooth(b: int, cells: int, size: int, g: torch.Generator) -> torch.Tensor:
    z = torch.randn(b, 1, cells, cells, generator=g)
    return F.interpolate(z, size=(size, size), mode="bicubic", align_corners=False)[:, 0]


def _ellipse_sdf(
    x: torch.Tensor,
    y: torch.Tensor,
    cx: torch.Tensor,
    cy: torch.Tensor,
    a: torch.Tensor,
    b: torch.Tensor,
    theta: torch.Tensor,
) -> torch.Tensor:
    """Approximate signed distance (inside < 0) to ellipses with per-image parameters (B,) → (B,S,S)."""
    dx, dy = x[None] - cx[:, None, None], y[None] - cy[:, None, None]
    c, s = torch.cos(theta)[:, None, None], torch.sin(theta)[:, None, None]
    u, v = dx * c + dy * s, -dx * s + dy * c
    a, b = a[:, None, None], b[:, None, None]
    return (torch.sqrt((u / a) ** 2 + (v / b) ** 2) - 1) * torch.minimum(a, b)


def _rand(b: int, g: torch.Generator) -> torch.Tensor:
    return torch.rand(b, generator=g)


def _body(b: int, x: torch.Tensor, y: torch.Tensor, px: float, g: torch.Generator):
    """(image (b,S,S), body centre and half-axes (bcx, bcy, ba, bb), each (b,)): a soft body ellipse
    on a dark field with up to four soft organ ellipses inside (the first two always present)."""
    bcx, bcy = 0.1 * (_rand(b, g) - 0.5), 0.1 * (_rand(b, g) - 0.5)
    ba, bb = 0.75 + 0.17 * _rand(b, g), 0.6 + 0.25 * _rand(b, g)
    btheta = 0.4 * (_rand(b, g) - 0.5)
    body_sdf = _ellipse_sdf(x, y, bcx, bcy, ba, bb, btheta)
    body = torch.sigmoid(-body_sdf / (0.01 + 0.5 * px))
    field = 0.03 + 0.05 * _rand(b, g)
    tissue = 0.3 + 0.15 * _rand(b, g)
    img = field[:, None, None] + (tissue - field)[:, None, None] * body
    for j in range(4):
        on = (_rand(b, g) < (1.0 if j < 2 else 0.5)).float()
        ang, rad = 2 * math.pi * _rand(b, g), 0.55 * torch.sqrt(_rand(b, g))
        ocx, ocy = bcx + rad * ba * torch.cos(ang), bcy + rad * bb * torch.sin(ang)
        oa, ob = 0.18 + 0.22 * _rand(b, g), 0.14 + 0.16 * _rand(b, g)
        sign = torch.where(_rand(b, g) < 0.6, 1.0, -1.0)
        delta = sign * (0.06 + 0.12 * _rand(b, g)) * on
        osdf = _ellipse_sdf(x, y, ocx, ocy, oa, ob, math.pi * _rand(b, g))
        img = img + delta[:, None, None] * torch.sigmoid(-osdf / (0.015 + 0.5 * px)) * body
    return img, (bcx, bcy, ba, bb)


def _lesions(
    img: torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor,
    px: float,
    frame: tuple[torch.Tensor, ...],
    g: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(image, mask bool (b,S,S)) with 0 (p = 1/2) or 1..3 irregular soft-edged blobs inside the body
    (`frame`: its centre and half-axes)."""
    b, s = img.shape[0], img.shape[-1]
    bcx, bcy, ba, bb = frame
    count = torch.where(_rand(b, g) < 0.5, 0, torch.randint(1, 4, (b,), generator=g))
    masks = torch.zeros(b, s, s, dtype=torch.bool)
    for j in range(3):
        on = count > j
        ang, rad = 2 * math.pi * _rand(b, g), 0.6 * torch.sqrt(_rand(b, g))
        lcx, lcy = bcx + rad * ba * torch.cos(ang), bcy + rad * bb * torch.sin(ang)
        r = 0.10 + 0.12 * _rand(b, g)
        dx, dy = x[None] - lcx[:, None, None], y[None] - lcy[:, None, None]
        rho, phi = torch.sqrt(dx * dx + dy * dy), torch.atan2(dy, dx)
        edge = torch.ones(b, s, s)
        for m in (2, 3, 4):
            amp, ph = 0.15 * _rand(b, g), 2 * math.pi * _rand(b, g)
            edge = edge + amp[:, None, None] * torch.cos(m * phi + ph[:, None, None])
        lsdf = rho - r[:, None, None] * edge
        soft = 0.01 + 0.03 * _rand(b, g) + 0.5 * px
        alpha = torch.sigmoid(-lsdf / soft[:, None, None]) * on[:, None, None]
        sign = torch.where(_rand(b, g) < 0.75, 1.0, -1.0)
        contrast = sign * (0.15 + 0.25 * _rand(b, g))
        img = img + contrast[:, None, None] * alpha * (1 + 0.1 * _smooth(b, 4, s, g))
        masks |= (lsdf <= 0) & on[:, None, None]
    return img, masks


def generate_chunk(b: int, size: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`b` samples: images uint8 (b,1,S,S), labels int64 (b,), masks uint8 (b,S,S)."""
    s = size
    coords = (torch.arange(s, dtype=torch.float32) + 0.5) / s * 2 - 1  # pixel centres in [-1, 1]
    y, x = torch.meshgrid(coords, coords, indexing="ij")
    px = 2.0 / s  # one pixel in these units
    img, frame = _body(b, x, y, px, g)
    # --- tissue texture: multiplicative smooth fields at two scales ---
    texture = 1 + 0.12 * _smooth(b, 6, s, g) + 0.05 * _smooth(b, max(6, s // 4), s, g)
    img = img * texture
    img, masks = _lesions(img, x, y, px, frame, g)
    # --- acquisition noise, 8-bit quantisation ---
    sigma = 0.01 + 0.03 * _rand(b, g)
    img = img + sigma[:, None, None] * torch.randn(b, s, s, generator=g)
    images = (img.clamp(0, 1) * 255).round().to(torch.uint8)[:, None]
    labels = masks.flatten(1).any(1).to(torch.int64)
    return images, labels, masks.to(torch.uint8)


def generate(
    n: int, image_size: int = 32, seed: int = 0, split: str = "train"
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`n` lesions samples: images uint8 (n,1,S,S), labels int64 (n,), masks uint8 (n,S,S) in {0,1}."""
    return generate_chunked("lesions", generate_chunk, chunk_size(image_size), n, image_size, seed, split)

"""`shapes`: generated RGB images of one of ten shapes on a textured, cluttered, noisy background.

Each image holds one shape of a random class, colour, size (radius 27–42 % of the side), rotation and
position, drawn with an anti-aliased edge over a background made of a random base colour, smooth
colour blotches, fine texture, optional stripes, thin clutter lines and small blobs, plus pixel
noise. The mask is 0 for background and k+1 on the pixels of a shape of class k (pixels where the
shape's coverage is ≥ 1/2). Images are quantised to 8 bits (stored as uint8), so exporting them
to CIFAR/COCO files is lossless.

Everything is computed with torch on coordinate grids, vectorised over a chunk of images, with a
local torch.Generator seeded from (seed, split, chunk index) by SHA-256: the same options give
bit-identical tensors in every process, and the first n images do not depend on how many are asked for.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from robustbench_lip.data.base import generate_chunked

CLASS_NAMES: tuple[str, ...] = (
    "circle",
    "square",
    "triangle",
    "star",
    "cross",
    "ring",
    "ellipse",
    "pentagon",
    "hexagon",
    "crescent",
)
NUM_CLASSES = len(CLASS_NAMES)
# Per-channel mean / std, fixed so that every split, seed and size normalises the same way: measured
# on the default train split (seed 0, 32×32, 4000 images: mean 0.502/0.502/0.494, std 0.250/0.249/0.251)
# and rounded (the colour distributions are the same for every channel). Tests re-measure them.
MEAN: tuple[float, float, float] = (0.5, 0.5, 0.5)
STD: tuple[float, float, float] = (0.25, 0.25, 0.25)


def chunk_size(image_size: int) -> int:
    """Images generated per chunk (bounded memory: ~2^17 pixels per chunk)."""
    return max(8, (1 << 17) // (image_size * image_size))


def _polygon(rho: torch.Tensor, phi: torch.Tensor, n: int, radius: float) -> torch.Tensor:
    """Signed distance (inside < 0) to a regular n-gon of circumradius `radius` (one vertex at angle 0)."""
    sector = 2 * math.pi / n
    local = torch.remainder(phi, sector) - sector / 2
    return rho * torch.cos(local) - radius * math.cos(math.pi / n)


def _box(u: torch.Tensor, v: torch.Tensor, a: float, b: float) -> torch.Tensor:
    return torch.maximum(u.abs() - a, v.abs() - b)


def shape_sdf(cls: int, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Approximate signed distance (inside < 0) of shape `cls`, in units of the shape radius, at
    local coordinates (u, v) (any shape; u, v already rotated and divided by the radius)."""
    rho = torch.sqrt(u * u + v * v)
    phi = torch.atan2(v, u)
    name = CLASS_NAMES[cls]
    if name == "circle":
        return rho - 0.9
    if name == "square":
        return _box(u, v, 0.72, 0.72)
    if name == "triangle":
        return _polygon(rho, phi, 3, 1.05)
    if name == "star":
        sector = 2 * math.pi / 5
        t = torch.remainder(phi, sector) / sector
        r_edge = 0.42 + 0.58 * (2 * t - 1).abs()
        return (rho - r_edge) * 0.55
    if name == "cross":
        return torch.minimum(_box(u, v, 0.95, 0.28), _box(u, v, 0.28, 0.95))
    if name == "ring":
        return torch.maximum(rho - 0.95, 0.55 - rho)
    if name == "ellipse":
        return (torch.sqrt(u * u + (v / 0.5) ** 2) - 1.0) * 0.5
    if name == "pentagon":
        return _polygon(rho, phi, 5, 0.95)
    if name == "hexagon":
        return _polygon(rho, phi, 6, 0.92)
    if name == "crescent":
        return torch.maximum(rho - 0.95, 0.75 - torch.sqrt((u - 0.45) ** 2 + v * v))
    raise ValueError(f"unknown shape class {cls}")


def _smooth_noise(b: int, c: int, cells: int, size: int, g: torch.Generator) -> torch.Tensor:
    """Smooth random field (b,c,size,size): Gaussian noise on a cells×cells grid, upsampled bilinearly."""
    z = torch.randn(b, c, cells, cells, generator=g)
    return F.interpolate(z, size=(size, size), mode="bilinear", align_corners=False)


def _segment_distance(x: torch.Tensor, y: torch.Tensor, p0: torch.Tensor, p1: torch.Tensor) -> torch.Tensor:
    """Distance from grid points (S,S) to segments p0→p1 (B,2) → (B,S,S)."""
    ax, ay = p0[:, 0, None, None], p0[:, 1, None, None]
    dx, dy = (p1[:, 0] - p0[:, 0])[:, None, None], (p1[:, 1] - p0[:, 1])[:, None, None]
    t = ((x - ax) * dx + (y - ay) * dy) / (dx * dx + dy * dy + 1e-6)
    t = t.clamp(0, 1)
    return torch.sqrt((x - ax - t * dx) ** 2 + (y - ay - t * dy) ** 2)


def _blend(img: torch.Tensor, alpha: torch.Tensor, colour: torch.Tensor) -> torch.Tensor:
    """img (B,3,S,S) ← (1-α)·img + α·colour, α (B,S,S), colour (B,3) or (B,3,S,S)."""
    if colour.ndim == 2:
        colour = colour[:, :, None, None]
    return img.lerp_(colour.expand_as(img), alpha[:, None].expand_as(img))


def _background(b: int, s: int, x: torch.Tensor, y: torch.Tensor, g: torch.Generator):
    """(base colour (b,3,1,1), image (b,3,S,S)): base colour + smooth colour blotches + fine texture
    + optional stripes."""
    base = 0.15 + 0.7 * torch.rand(b, 3, 1, 1, generator=g)
    img = base + 0.10 * _smooth_noise(b, 3, 4, s, g)
    img = img + 0.05 * _smooth_noise(b, 1, max(4, s // 4), s, g)
    stripe_on = (torch.rand(b, generator=g) < 0.3).float()
    amp = 0.08 * torch.rand(b, generator=g) * stripe_on
    freq = 2 + 5 * torch.rand(b, generator=g)
    psi = math.pi * torch.rand(b, generator=g)
    phase = 2 * math.pi * torch.rand(b, generator=g)
    proj = (x[None] * torch.cos(psi)[:, None, None] + y[None] * torch.sin(psi)[:, None, None]) / s
    stripes = amp[:, None, None] * torch.sin(2 * math.pi * freq[:, None, None] * proj + phase[:, None, None])
    return base, img + stripes[:, None]


def _clutter(
    img: torch.Tensor, b: int, s: int, x: torch.Tensor, y: torch.Tensor, g: torch.Generator
) -> torch.Tensor:
    """img with thin line segments and small blobs of random colour drawn over it."""
    for _ in range(3):
        p0 = torch.rand(b, 2, generator=g) * s
        p1 = p0 + torch.randn(b, 2, generator=g) * (s / 3)
        width = 0.3 + 0.4 * torch.rand(b, generator=g)
        on = (torch.rand(b, generator=g) < 0.6).float()
        dist = _segment_distance(x, y, p0, p1)
        alpha = (width[:, None, None] - dist + 0.5).clamp(0, 1) * on[:, None, None] * 0.6
        img = _blend(img, alpha, torch.rand(b, 3, generator=g))
    for _ in range(2):
        centre = torch.rand(b, 2, generator=g) * s
        radius = (0.03 + 0.03 * torch.rand(b, generator=g)) * s
        dist = torch.sqrt((x - centre[:, 0, None, None]) ** 2 + (y - centre[:, 1, None, None]) ** 2)
        alpha = (radius[:, None, None] - dist + 0.5).clamp(0, 1)
        img = _blend(img, alpha, torch.rand(b, 3, generator=g))
    return img


def _shape(b: int, s: int, x: torch.Tensor, y: torch.Tensor, g: torch.Generator):
    """The shapes' geometry: (labels (b,), local coordinates u, v (b,S,S), coverage (b,S,S),
    masks uint8 (b,S,S))."""
    labels = torch.randperm(b, generator=g) % NUM_CLASSES
    radius = (0.27 + 0.15 * torch.rand(b, generator=g)) * s
    cx = radius + torch.rand(b, generator=g) * (s - 2 * radius)
    cy = radius + torch.rand(b, generator=g) * (s - 2 * radius)
    theta = 2 * math.pi * torch.rand(b, generator=g)
    dx, dy = x[None] - cx[:, None, None], y[None] - cy[:, None, None]
    cos_t, sin_t = torch.cos(theta)[:, None, None], torch.sin(theta)[:, None, None]
    u = (dx * cos_t + dy * sin_t) / radius[:, None, None]
    v = (-dx * sin_t + dy * cos_t) / radius[:, None, None]
    sdf = torch.empty(b, s, s)
    for k in range(NUM_CLASSES):
        idx = (labels == k).nonzero(as_tuple=True)[0]
        if idx.numel():
            sdf[idx] = shape_sdf(k, u[idx], v[idx])
    dist_px = sdf * radius[:, None, None]
    coverage = (0.5 - dist_px).clamp(0, 1)
    masks = torch.where(dist_px <= 0, (labels + 1)[:, None, None], 0).to(torch.uint8)
    return labels, u, v, coverage, masks


def _paint(
    img: torch.Tensor,
    base: torch.Tensor,
    u: torch.Tensor,
    v: torch.Tensor,
    coverage: torch.Tensor,
    g: torch.Generator,
) -> torch.Tensor:
    """img with the shapes painted in a shaded colour; when the colour's mean is within 0.25 of the
    base colour's, it is shifted away by 0.35–0.5."""
    b = img.shape[0]
    colour = torch.rand(b, 3, generator=g)
    diff = colour.mean(1) - base.view(b, 3).mean(1)
    away = torch.where(base.view(b, 3).mean(1) > 0.5, -1.0, 1.0)
    shift = torch.where(diff.abs() < 0.25, away * (0.35 + 0.15 * torch.rand(b, generator=g)), 0.0)
    colour = (colour + shift[:, None]).clamp(0, 1)
    grad = torch.rand(b, 2, generator=g) * 2 - 1
    shading = 1 + 0.2 * (u * grad[:, 0, None, None] + v * grad[:, 1, None, None]).clamp(-1.5, 1.5)
    fill = colour[:, :, None, None] * shading[:, None]
    return _blend(img, coverage, fill)


def generate_chunk(b: int, size: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`b` samples: images uint8 (b,3,S,S), labels int64 (b,), masks uint8 (b,S,S)."""
    s = size
    coords = torch.arange(s, dtype=torch.float32) + 0.5
    y, x = torch.meshgrid(coords, coords, indexing="ij")  # (S,S) pixel centres
    base, img = _background(b, s, x, y, g)
    img = _clutter(img, b, s, x, y, g)
    labels, u, v, coverage, masks = _shape(b, s, x, y, g)
    img = _paint(img, base, u, v, coverage, g)
    # --- acquisition noise, 8-bit quantisation ---
    sigma = 0.01 + 0.03 * torch.rand(b, 1, 1, 1, generator=g)
    img = img + sigma * torch.randn(b, 3, s, s, generator=g)
    images = (img.clamp(0, 1) * 255).round().to(torch.uint8)
    return images, labels.to(torch.int64), masks


def generate(
    n: int, image_size: int = 32, seed: int = 0, split: str = "train"
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`n` shapes samples: images uint8 (n,3,S,S), labels int64 (n,), masks uint8 (n,S,S)."""
    return generate_chunked("shapes", generate_chunk, chunk_size(image_size), n, image_size, seed, split)

"""1-Lipschitz (ℓ2) layers whose weights are rescaled in forward from their free parameters by a
closed-form, x-independent certificate — no orthogonalisation, no state, cheap per step.

- `AOLConv2d` / AOL 1×1: almost-orthogonal layers (Prach & Lampert 2022, "Almost-orthogonal layers
  for efficient general-purpose Lipschitz networks", ECCV). With P = VᵀV the (cin × cin) kernel of
  the autocorrelation of the parameter V over output channels and kernel shifts, the weight is
  V·diag(d), d_i = (Σ_j Σ_s |P_ij(s)|)^{-1/2}. By the Schur test diag(d)·P·diag(d) ≼ I on the whole
  plane, so the conv has operator norm ≤ 1; zero padding restricts it (≤ 1 on any grid).
- `SLLConv2d` / `SLLLinear`: SDP-based Lipschitz layers (Araujo, Havens, Delattre, Allauzen & Hu
  2023, "A unified algebraic perspective on Lipschitz neural networks", ICLR), with q = 1:

      conv:  h = x − 2·convT(t ⊙ relu(conv(x, W, b)), W)       (stride 1, padding k // 2)
      dense: h = x − 2·Wᵀ(t ⊙ relu(W x + b))

  t_i = 1 / Σ_j Σ_s |(W ⋆ W)_ij(s)| (i, j hidden channels, s kernel shifts; the dense case has only
  s = 0: t_i = 1 / Σ_j |(W Wᵀ)_ij|). The Schur test gives W Wᵀ ≼ diag(1/t) as an operator on the
  grid (zero padding only removes terms), i.e. ‖diag(t)^½ W‖ ≤ 1, which is the condition of their
  Theorem 3 for h to be 1-Lipschitz. The written form (one parameter W used by both convs, t from W
  only, no in-place ops) is the one the certifier's SLL pattern rule recognises.
- `OrthoLinear`: a linear map with orthonormal rows (out ≤ in) or columns, W = QR(V)'s Q: norm 1.
- `PixelUnshuffle` (torch's): a permutation of the pixels into channels, an isometry.

Nothing here claims a constant: the certifier computes it from the exported graph.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

#: added to the Schur row sums so a zero parameter row gives a finite scale (only makes t, d smaller)
ROW_SUM_EPS = 1e-12


def aol_scale(v: torch.Tensor) -> torch.Tensor:
    """d (cin,) = (Σ_j Σ_s |(VᵀV)_ij(s)|)^{-1/2} for a conv weight V (cout, cin, k, k)."""
    k = v.shape[-1]
    vt = v.transpose(0, 1)  # (cin, cout, k, k)
    p = F.conv2d(vt, vt, padding=k - 1)  # (cin, cin, 2k − 1, 2k − 1)
    return (p.abs().sum(dim=(1, 2, 3)) + ROW_SUM_EPS).rsqrt()


def sll_scale(w: torch.Tensor) -> torch.Tensor:
    """t (hidden,) = 1 / Σ_j Σ_s |(W ⋆ W)_ij(s)| for W (hidden, c, k, k) or (hidden, c)."""
    if w.dim() == 2:
        return 1.0 / ((w @ w.t()).abs().sum(dim=1) + ROW_SUM_EPS)
    k = w.shape[-1]
    p = F.conv2d(w, w, padding=k - 1)  # (hidden, hidden, 2k − 1, 2k − 1)
    return 1.0 / (p.abs().sum(dim=(1, 2, 3)) + ROW_SUM_EPS)


def _aol_init(cout: int, cin: int) -> torch.Tensor:
    """(cout, cin) with VᵀV exactly a diagonal or a sum of disjoint all-equal blocks, so that the AOL
    rescaling is exact (d = 1) and the map is an isometry (cout ≥ cin) or a co-isometry (cout < cin):
    orthogonal columns when cout ≥ cin; else input channel i feeds output i mod cout, each output
    averaging its g inputs with weight 1/√g (a random orthogonal init would lose half the signal to
    the rescaling of its non-zero off-diagonal VᵀV)."""
    if cout >= cin:
        v = torch.empty(cout, cin)
        nn.init.orthogonal_(v)
        return v
    idx = torch.arange(cin)
    v = torch.zeros(cout, cin)
    v[idx % cout, idx] = 1.0
    return v / v.sum(1, keepdim=True).sqrt()


class AOLConv2d(nn.Module):
    """AOL convolution cin → cout, k×k (odd), stride 1, zero padding k // 2: (N, cin, H, W) →
    (N, cout, H, W). Initialised as in Prach & Lampert: identity-like (orthogonal for k = 1)."""

    def __init__(self, cin: int, cout: int, kernel_size: int = 3, bias: bool = True) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError("AOLConv2d needs an odd kernel size")
        self.padding = kernel_size // 2
        v = torch.zeros(cout, cin, kernel_size, kernel_size)
        v[:, :, self.padding, self.padding] = _aol_init(cout, cin)
        self.param = nn.Parameter(v)
        self.bias = nn.Parameter(torch.zeros(cout)) if bias else None

    @property
    def weight(self) -> torch.Tensor:
        """The rescaled kernel V·diag(d) (cout, cin, k, k)."""
        return self.param * aol_scale(self.param)[None, :, None, None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight, self.bias, padding=self.padding)


class SLLConv2d(nn.Module):
    """SLL residual block on c channels, k×k kernel (odd): (N, c, H, W) → (N, c, H, W)."""

    def __init__(self, channels: int, kernel_size: int = 3) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError("SLLConv2d needs an odd kernel size")
        self.padding = kernel_size // 2
        w = torch.empty(channels, channels, kernel_size, kernel_size)
        nn.init.kaiming_uniform_(w, a=math.sqrt(5))
        self.weight = nn.Parameter(w)
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w, p = self.weight, self.padding
        t = sll_scale(w)
        h = t[None, :, None, None] * F.relu(F.conv2d(x, w, self.bias, padding=p))
        return x - 2.0 * F.conv_transpose2d(h, w, padding=p)


class SLLLinear(nn.Module):
    """SLL residual block on feature vectors: (N, c) → (N, c), hidden width `hidden` (default c)."""

    def __init__(self, channels: int, hidden: int | None = None) -> None:
        super().__init__()
        w = torch.empty(hidden or channels, channels)
        nn.init.kaiming_uniform_(w, a=math.sqrt(5))
        self.weight = nn.Parameter(w)
        self.bias = nn.Parameter(torch.zeros(hidden or channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight
        return x - 2.0 * F.linear(sll_scale(w) * F.relu(F.linear(x, w, self.bias)), w.t())


def orthonormal(v: torch.Tensor) -> torch.Tensor:
    """Q of the QR factorisation of v (out, in) or vᵀ, as (out, in): orthonormal rows when out ≤ in,
    orthonormal columns otherwise (operator norm 1)."""
    if v.shape[0] <= v.shape[1]:
        return torch.linalg.qr(v.t()).Q.t()
    return torch.linalg.qr(v).Q


class OrthoLinear(nn.Module):
    """Linear map (N, in) → (N, out) with an orthonormal weight (rows if out ≤ in), scaled by `scale`
    (1 by default; the CAM head uses √(h·w) before its spatial mean)."""

    def __init__(self, cin: int, cout: int, bias: bool = True, scale: float = 1.0) -> None:
        super().__init__()
        v = torch.empty(cout, cin)
        nn.init.orthogonal_(v)
        self.param = nn.Parameter(v)
        self.scale = float(scale)
        self.bias = nn.Parameter(torch.zeros(cout)) if bias else None

    @property
    def weight(self) -> torch.Tensor:
        """The weight (out, in): scale · orthonormal(param)."""
        q = orthonormal(self.param)
        return q * self.scale if self.scale != 1.0 else q

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias)


class OrthoConv1x1(OrthoLinear):
    """`OrthoLinear` applied at every pixel: (N, in, H, W) → (N, out, H, W); `weight` is 4-D."""

    @property
    def weight(self) -> torch.Tensor:  # type: ignore[override]
        return super().weight[:, :, None, None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight, self.bias)


__all__ = [
    "ROW_SUM_EPS",
    "AOLConv2d",
    "OrthoConv1x1",
    "OrthoLinear",
    "SLLConv2d",
    "SLLLinear",
    "aol_scale",
    "orthonormal",
    "sll_scale",
]

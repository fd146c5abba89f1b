"""Circular (polyphase) embeddings of padded, strided, dilated 2-D convolutions, and their norms.

Per axis, output i of a conv reads padded position t = s·i + d·j with tap j; `source_map` records
which input pixel each padded position copies (−1: zero padding). An embedding writes the taps as
offsets o_j = s·q_j + r_j on the polyphase components x_r[m] = x[s·m + r] (r < s), so the strided
conv is a stride-1 conv with c_in·s_h·s_w input channels: y_i = Σ_j T_j x_{r_j}[i + q_j].

- Zero padding (`zeros_axis`): the input is cropped to the pixels some output reads (exact), and each
  component is placed at [0, n_r) of Z_M with M ≥ n_out, M > n_out − 1 + max q and M ≥ ⌈n/s⌉ − min q:
  then no read wraps onto data, so the conv is P·C·E with E an isometric embedding, P a coordinate
  restriction and C the circular conv on Z_M: ‖conv‖ ≤ ‖C‖.
- Circular padding (`circular_axis`): the read positions are (s·i + o_j) mod n. If s divides n the
  conv is D·C with C the circular conv on Z_{n/s} and D repeating output i mod (n/s) as often as it
  occurs: ‖conv‖ ≤ √(max multiplicity)·‖C‖, equality when every multiplicity is equal. Else C is the
  stride-1 circular conv on Z_n and D picks rows s·i mod n (with multiplicity).
‖C‖ = max over frequencies of σ_max(Σ_j T_j e^{−2πi(q_h u/M_h + q_w v/M_w)}); conjugate frequencies
have equal singular values, so one of each pair is evaluated, in blocks of bounded memory.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from robustbench_lip.lipschitz.bounds.gram import BLOCK_BYTES, sigma_max_blocks


@dataclass(frozen=True)
class Axis:
    """One axis of a padded conv: input length n, padding (p0, p1), kernel k, stride s, dilation d,
    output length n_out, the source pixel of every padded position (src, −1 for zeros) and whether
    some output reads it (read)."""

    n: int
    p0: int
    k: int
    s: int
    d: int
    n_out: int
    src: torch.Tensor
    read: torch.Tensor

    def active_taps(self) -> list[int]:
        """Taps that read a real pixel for some output."""
        i = torch.arange(self.n_out) * self.s
        return [j for j in range(self.k) if bool((self.src[i + self.d * j] >= 0).any())]


@dataclass(frozen=True)
class Embedding:
    """Per axis: kept taps, their phase r and offset q, stride s (components), grid M, output
    multiplicity mult, and whether ‖conv‖ = √mult·‖C‖ exactly along this axis."""

    taps: list[int]
    r: list[int]
    q: list[int]
    s: int
    grid: int
    mult: int
    exact: bool


def source_map(n: int, p0: int, p1: int, k: int, s: int, d: int, pmode: str) -> Axis:
    """The Axis of an input of length n padded by (p0, p1) with pmode (zeros/circular/reflect/replicate)."""
    n_out = (n + p0 + p1 - d * (k - 1) - 1) // s + 1
    idx = torch.arange(n, dtype=torch.float64).view(1, 1, n)
    if pmode == "zeros":
        src = F.pad(idx, (p0, p1), value=-1.0)
    elif pmode == "circular":
        src = ((torch.arange(n + p0 + p1) - p0) % n).to(torch.float64)
    else:
        src = F.pad(idx, (p0, p1), mode=pmode)
    src = src.flatten().round().long()
    read = torch.zeros(n + p0 + p1, dtype=torch.bool)
    pos = (torch.arange(max(n_out, 0)) * s).view(-1, 1) + d * torch.arange(k).view(1, -1)
    read[pos.flatten()] = True
    return Axis(n, p0, k, s, d, n_out, src, read)


def zeros_axis(ax: Axis) -> Embedding:
    """Embedding of a zero-padded axis (see the module docstring)."""
    taps = ax.active_taps()
    real = ax.src[ax.read]
    real = real[real >= 0]
    lo, hi = int(real.min()), int(real.max())
    n = hi - lo + 1  # the read window of the input (the rest is never read: cropped exactly)
    off = [ax.d * j - ax.p0 - lo for j in taps]
    q = [o // ax.s for o in off]
    r = [o % ax.s for o in off]
    grid = max(ax.n_out, ax.n_out + max(q), -(-n // ax.s) - min(min(q), 0))
    return Embedding(taps, r, q, ax.s, grid, 1, False)


def circular_axis(ax: Axis) -> Embedding:
    """Embedding of a circularly padded axis (see the module docstring)."""
    taps = list(range(ax.k))
    off = [ax.d * j - ax.p0 for j in taps]
    out = torch.arange(ax.n_out)
    if ax.n % ax.s == 0:
        grid = ax.n // ax.s
        cnt = torch.bincount(out % grid, minlength=grid)
        q, r, s = [o // ax.s for o in off], [o % ax.s for o in off], ax.s
    else:
        grid = ax.n
        cnt = torch.bincount((out * ax.s) % grid, minlength=grid)
        q, r, s = off, [0] * len(off), 1
    exact = bool((cnt == cnt.max()).all())
    return Embedding(taps, r, q, s, grid, int(cnt.max()), exact)


def _phases(e: Embedding, freqs: torch.Tensor) -> torch.Tensor:
    """(len(taps), F, s) complex: e^{−2πi q_j f / M} placed at phase r_j."""
    q = torch.tensor(e.q, dtype=torch.float64).view(-1, 1)
    ph = torch.exp(-2j * math.pi * q * freqs.to(torch.float64).view(1, -1) / e.grid)
    out = torch.zeros(len(e.taps), len(freqs), e.s, dtype=torch.complex128)
    out[torch.arange(len(e.taps)), :, torch.tensor(e.r)] = ph
    return out


def _half_spectrum(mh: int, mw: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One frequency (u, v) of each conjugate pair {(u, v), (−u, −v)} on the mh × mw grid."""
    u, v = torch.meshgrid(torch.arange(mh), torch.arange(mw), indexing="ij")
    u, v = u.flatten(), v.flatten()
    keep = u * mw + v <= ((-u) % mh) * mw + ((-v) % mw)
    return u[keep], v[keep]


def _spectrum_blocks(wg: torch.Tensor, eh: Embedding, ew: Embedding) -> Iterator[torch.Tensor]:
    """Blocks (G·F, c_out, c_in·s_h·s_w) of kernel transforms over the half spectrum."""
    k = wg[..., eh.taps, :][..., ew.taps].to(torch.complex128)
    g, co, ci = k.shape[:3]
    m, n = co, ci * eh.s * ew.s
    per_freq = 16 * g * (m * n + 3 * min(m, n) ** 2)
    step = max(1, BLOCK_BYTES // per_freq)
    u, v = _half_spectrum(eh.grid, ew.grid)
    kmat = k.reshape(g * co * ci, len(eh.taps) * len(ew.taps))
    for a in range(0, len(u), step):
        ah, aw = _phases(eh, u[a : a + step]), _phases(ew, v[a : a + step])
        p = torch.einsum("afr,bft->abfrt", ah, aw).reshape(kmat.shape[1], -1)
        spec = (kmat @ p).view(g, co, ci, -1, eh.s, ew.s)
        yield spec.permute(0, 3, 1, 2, 4, 5).reshape(-1, co, n)


def circular_norm(wg: torch.Tensor, eh: Embedding, ew: Embedding) -> float:
    """√(mult_h·mult_w)·‖C‖ for kernels wg (G, c_out, c_in, kh, kw): a certified bound (not × SAFETY)."""
    return math.sqrt(eh.mult * ew.mult) * sigma_max_blocks(_spectrum_blocks(wg, eh, ew))

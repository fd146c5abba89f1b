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
have equal singular values, so one of each pair is evaluated, in blocks of bounded memory. The
rounding of the transforms themselves is ≤ (T + 2)u·Σ_t‖K_t‖_F ≤ (T + 2)u·√(T·n)·‖C‖ (Parseval; T taps,
n the smaller channel count): below 1e-11 relative, absorbed by the caller's SAFETY factor.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import product

import torch
import torch.nn.functional as F

from robustbench_lip.lipschitz.bounds.gram import BLOCK_BYTES, U, sigma_max_blocks, sigma_max_from_grams


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
    """Blocks (G·F, c_out, c_in·s_h·s_w) of kernel transforms over the half spectrum; wg holds the
    kept taps only."""
    k = wg.to(torch.complex128)
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


def _tap_pairs(eh: Embedding, ew: Embedding, left: bool) -> list[tuple[int, int, int, int]]:
    """Pairs of 2-D taps (a, b, a', b') whose products enter the Gram, with offset difference d ≥ 0
    (lexicographic; M_{−d} = M_dᵀ): for the left Gram only taps of the same phase pair up."""
    out = []
    for a, b, a2, b2 in product(range(len(eh.taps)), range(len(ew.taps)), repeat=2):
        if left and (eh.r[a] != eh.r[a2] or ew.r[b] != ew.r[b2]):
            continue
        if (eh.q[a] - eh.q[a2], ew.q[b] - ew.q[b2]) >= (0, 0):
            out.append((a, b, a2, b2))
    return out


def _gram_blocks(k: torch.Tensor, eh: Embedding, ew: Embedding) -> Iterator[tuple[torch.Tensor, ...]]:
    """(Grams (G·F, n, n), error bounds) over the half spectrum from the tap Grams M_d: the Gram of
    the kernel transform is Σ_d M_d e^{∓i d·ω} (left: a·aᴴ = Σ T_t T_t'ᵀ e^{−i(q_t − q_t')·ω}; right:
    aᴴa with + and blocks (r_t, r_t')).
    Rounding: ‖ĝ − g‖₂ ≤ 16(c_in + pairs + offsets + 8)u·(Σ_t ‖K_t‖_F)²."""
    g, co, ci = k.shape[:3]
    s = eh.s * ew.s
    left = co <= ci * s
    side = co if left else ci * s
    mats: dict[tuple[int, int], torch.Tensor] = {}
    pairs = _tap_pairs(eh, ew, left)
    for a, b, a2, b2 in pairs:
        d = (eh.q[a] - eh.q[a2], ew.q[b] - ew.q[b2])
        acc = mats.setdefault(d, k.new_zeros(g, side, side))
        if left:
            acc += k[..., a, b] @ k[..., a2, b2].mT
        else:
            r1, r2 = eh.r[a] * ew.s + ew.r[b], eh.r[a2] * ew.s + ew.r[b2]
            acc.view(g, ci, s, ci, s)[:, :, r1, :, r2] += k[..., a, b].mT @ k[..., a2, b2]
    for d in [d for d in mats if d != (0, 0)]:
        mats[(-d[0], -d[1])] = mats[d].mT
    offs = torch.tensor(list(mats), dtype=torch.float64)
    stack = torch.stack(list(mats.values())).reshape(len(mats), -1)
    mats.clear()
    fro = torch.linalg.vector_norm(k, dim=(1, 2)).sum((-2, -1))  # Σ_t ‖K_t‖_F per group
    err = 16 * (ci + len(pairs) + len(mats) + 8) * U * fro**2
    sign = -1.0 if left else 1.0
    u, v = _half_spectrum(eh.grid, ew.grid)
    step = max(1, BLOCK_BYTES // (64 * g * side * side))
    for a in range(0, len(u), step):
        w = torch.stack([u[a : a + step] / eh.grid, v[a : a + step] / ew.grid], 1).to(torch.float64)
        ph = torch.exp(sign * 2j * math.pi * (w @ offs.T))  # (F, D)
        gr = torch.complex(ph.real @ stack, ph.imag @ stack)
        gr = gr.view(-1, g, side, side).transpose(0, 1).reshape(-1, side, side)
        yield gr, err.repeat_interleave(len(w)) * 2  # Hermitian up to rounding: the factorisations
        # read one triangle, which differs from the exact Gram by ≤ √2·‖ĝ − g‖_F


def _costs(k: torch.Tensor, eh: Embedding, ew: Embedding) -> tuple[float, float]:
    """Estimated cost of (per-frequency Grams, tap Grams), in complex-matmul flops (a real matmul
    runs at about half the rate of a complex one per flop)."""
    g, co, ci = k.shape[:3]
    n = ci * eh.s * ew.s
    nf = len(_half_spectrum(eh.grid, ew.grid)[0])
    lo, hi = min(co, n), max(co, n)
    direct = nf * g * 8.0 * hi * lo * lo
    left = co <= n
    pairs = len(_tap_pairs(eh, ew, left))
    taps = 2 * pairs * g * 2.0 * (co * ci * co if left else ci * co * ci) + nf * g * 8.0 * 25 * lo * lo
    side = co if left else n
    offsets = len({(eh.q[a] - eh.q[a2], ew.q[b] - ew.q[b2]) for a, b, a2, b2 in _tap_pairs(eh, ew, left)})
    if 16 * (2 * offsets + 1) * g * side * side > 2 * BLOCK_BYTES:  # the tap Grams would not fit
        taps = math.inf
    return direct, taps


def circular_norm(wg: torch.Tensor, eh: Embedding, ew: Embedding) -> float:
    """√(mult_h·mult_w)·‖C‖ for kernels wg (G, c_out, c_in, kh, kw): a certified bound (not × SAFETY).
    The kernel transforms' Grams come per frequency or, when cheaper, from the taps' Grams."""
    k = wg[..., eh.taps, :][..., ew.taps].to(torch.float64)
    top = float(torch.linalg.vector_norm(k))
    if top == 0.0:
        return 0.0
    e = math.frexp(top)[1]
    k = k * 2.0 ** (-e)  # exact
    direct, taps = _costs(k, eh, ew)
    if taps < direct:
        sig = sigma_max_from_grams(_gram_blocks(k, eh, ew))
    else:
        sig = sigma_max_blocks(_spectrum_blocks(k, eh, ew))
    return math.sqrt(eh.mult * ew.mult) * sig * 2.0**e

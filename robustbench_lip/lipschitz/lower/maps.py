"""The maps a search runs on: a protected private copy of f in its own dtype (autograd proposals)
and, when the model allows, a float64 copy for re-evaluating witnesses; checks that f is a
deterministic per-sample map; the rounding allowance of non-float64 evaluations."""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from robustbench_lip.device import preserved_modes
from robustbench_lip.errors import RlipError

Target = Literal["A", "reflection"]
Map = Callable[[torch.Tensor], torch.Tensor]

ALLOWANCE_ULPS = 2.0**14
"""Each evaluation g(z) is taken to be off by ≤ ALLOWANCE_ULPS · u · s(z) (u: unit roundoff of the
evaluation dtype, 2^-53 or 2^-24; s(z): the largest per-sample norm of z, f(z) and every value the
evaluation computes, matrix products and convolutions counted as ‖input‖·‖W‖_F — `_Maps.evaluate`),
i.e. ~1.6e4 roundoffs of the largest value on the way — far above the forward error of sums of
≤ 10^4 terms per layer over tens of layers (~√n·depth·u typically, n·u worst case per layer). The
quotient reports max(0, Δ − a_x − a_y)/‖x − y‖, so a pair whose difference is within the rounding
of its own evaluation witnesses nothing. A generous allowance, not a proof; with float64 it costs
~2e-12 of the largest value, with float32 ~1e-3."""
_BATCH = 64


def _line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0][:200] if text else ''}".rstrip(": ")


def _dtype_of(f: Any, default: torch.dtype) -> torch.dtype:
    if isinstance(f, nn.Module):
        for t in (*f.parameters(), *f.buffers()):
            if t.is_floating_point():
                return t.dtype
    return default


class _LowPrecisionSpy(torch.utils._python_dispatch.TorchDispatchMode):
    """Records ops that produce non-float64 floating tensors (hard-coded casts in a float64 run)."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: set[str] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in torch.utils._pytree.tree_leaves(out):
            if (
                isinstance(t, torch.Tensor)
                and t.is_floating_point()
                and t.dtype != torch.float64
                and t.numel() > 1
            ):
                self.ops.add(str(func))
        return out


_HIDDEN_PRODUCTS = ("aten.mm.", "aten.addmm.", "aten.bmm.", "aten.convolution.", "aten.linear.")


def _sample_norms(t: torch.Tensor, n: int) -> torch.Tensor | None:
    """Per-sample ℓ2 norms (n,) float64 of a tensor whose leading axis holds the n samples (or a
    multiple of them, as after a view (N, P, C) → (N·P, C)); any other floating tensor (a scalar, a
    chunk of a fixed-batch program, an output whose first axis is not the batch) counts with its
    whole norm for every sample; None for non-floating or empty tensors."""
    if not (t.is_floating_point() and t.numel()):
        return None
    if t.dim() >= 1 and t.shape[0] % n == 0:
        return t.detach().reshape(n, -1).double().norm(dim=1)
    return t.detach().double().norm().expand(n).clone()


class _Magnitudes(torch.utils._python_dispatch.TorchDispatchMode):
    """Per-sample magnitude (n,) of every value one evaluation of n samples computes: the norms of
    every op's outputs and, for matrix products and convolutions, ‖input‖·‖W‖_F, the size of the
    products they sum. Rounding errors scale with these, not with the output: (x + 2^52) − 2^52
    returns x rounded to integers."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n
        self.mag = torch.zeros(n, dtype=torch.float64)

    def _see(self, m: torch.Tensor | None) -> None:
        if m is not None:
            self.mag = torch.maximum(self.mag, torch.nan_to_num(m.cpu(), nan=math.inf))

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in torch.utils._pytree.tree_leaves(out):
            if isinstance(t, torch.Tensor):
                self._see(_sample_norms(t, self.n))
        name = str(func)
        ts = [a for a in args if isinstance(a, torch.Tensor) and a.is_floating_point()]
        if name.startswith(_HIDDEN_PRODUCTS) and len(ts) >= 2:
            k = 1 if name.startswith("aten.addmm.") and len(ts) >= 3 else 0
            xn = _sample_norms(ts[k], self.n)
            w = max(float(o.detach().double().norm()) for o in ts[:k] + ts[k + 1 :])
            self._see(None if xn is None else xn * w)
        return out


@dataclass
class _Maps:
    """search: f on a private copy in its own dtype (autograd); exact: f for witnesses (eval_dtype)."""

    search: Map
    dtype: torch.dtype
    exact: Map
    eval_dtype: torch.dtype
    notes: list[str]
    x_scale: torch.Tensor | None = None

    @property
    def unit(self) -> float:
        return 2.0**-53 if self.eval_dtype == torch.float64 else float(torch.finfo(self.eval_dtype).eps) / 2

    def run_exact(self, z: torch.Tensor) -> torch.Tensor:
        """f(z) in eval_dtype, batched, no grad; returned as float64."""
        return self.evaluate(z)[0]

    def evaluate(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(f(z) (P, ...) in eval_dtype, returned as float64; scale (P,) float64: the largest norm
        of z, f(z) and every value computed on the way, per sample). Each output is then taken to be
        off by ≤ ALLOWANCE_ULPS · unit · scale."""
        outs, mags = [], []
        with torch.no_grad():
            for i in range(0, z.shape[0], _BATCH):
                zb = z[i : i + _BATCH].to(self.eval_dtype)
                spy = _Magnitudes(zb.shape[0])
                with spy:
                    o = self.exact(zb)
                if not isinstance(o, torch.Tensor):
                    raise RlipError("the model does not return a tensor")
                outs.append(o.double())
                nz = zb.double().flatten(1).norm(dim=1).cpu()
                no = o.double().flatten(1).norm(dim=1).cpu()
                mags.append(torch.maximum(spy.mag, torch.maximum(nz, no)))
        return torch.cat(outs), torch.cat(mags).to(z.device)


def _call(m: Any) -> Map:
    return lambda z: m(z.clone())  # the model may write into its input (in-place ops)


@contextlib.contextmanager
def _protected(f: Any) -> Iterator[tuple[Any, list[str]]]:
    """A private deep copy of f (or f itself, its state restored afterwards, when it cannot be copied)."""
    notes: list[str] = []
    if not isinstance(f, nn.Module):
        notes.append("f is not an nn.Module: evaluated as given (its state cannot be protected)")
        yield f, notes
        return
    try:
        work = copy.deepcopy(f)
    except Exception as e:
        notes.append(f"the model could not be copied ({_line(e)}); its state was restored afterwards")
        saved = {k: v.detach().clone() for k, v in f.state_dict(keep_vars=True).items()}
        try:
            with preserved_modes(f):
                yield f, notes
        finally:
            with torch.no_grad():
                for k, v in f.state_dict(keep_vars=True).items():
                    if k in saved:
                        v.copy_(saved[k])
        return
    for p in work.parameters():
        p.requires_grad_(False)
    yield work, notes


def _prepare(work: Any, x: torch.Tensor, notes: list[str]) -> tuple[_Maps, torch.Tensor, torch.Tensor]:
    """The maps, x cast to the model's dtype, and f(x) (float64). Raises RlipError for a model that
    fails on a plain forward or returns non-finite values."""
    dtype = _dtype_of(work, x.dtype if x.is_floating_point() else torch.float32)
    xs = x.detach().to(dtype)
    search = _call(work)
    try:
        with torch.no_grad():
            out = torch.cat([search(xs[i : i + _BATCH]) for i in range(0, xs.shape[0], _BATCH)])
    except RlipError:
        raise
    except Exception as e:
        raise RlipError(
            f"the model fails on a forward pass of inputs {tuple(xs.shape)}: {_line(e)}"
        ) from None
    if not isinstance(out, torch.Tensor):
        raise RlipError(f"the model returns {type(out).__name__}, not a tensor")
    bad = ~torch.isfinite(out.flatten(1)).all(1)
    if bool(bad.any()):
        raise RlipError(
            f"the model returns non-finite values on {int(bad.sum())} of {xs.shape[0]} inputs "
            f"(first: sample {int(bad.nonzero()[0])})"
        )
    probe = xs[:2]
    exact: Map = search
    eval_dtype = dtype
    if dtype != torch.float64:
        try:
            m64 = copy.deepcopy(work).double() if isinstance(work, nn.Module) else work
            cand = _call(m64)
            spy = _LowPrecisionSpy()
            with torch.no_grad(), spy:
                o64 = cand(probe.double())
            if not isinstance(o64, torch.Tensor) or o64.dtype != torch.float64:
                raise TypeError(f"it returns {getattr(o64, 'dtype', type(o64))}, not float64")
            if spy.ops:
                raise TypeError(
                    "it computes in lower precision inside (" + ", ".join(sorted(spy.ops)[:3]) + ")"
                )
            exact, eval_dtype = cand, torch.float64
        except Exception as e:
            notes.append(
                f"float64 evaluation unavailable ({_line(e)}); quotients evaluated in {str(dtype)[6:]} "
                f"minus a rounding allowance of {ALLOWANCE_ULPS:g} roundoffs"
            )
    maps = _Maps(search, dtype, exact, eval_dtype, notes)
    fx, maps.x_scale = maps.evaluate(xs)
    return maps, xs, fx


def _per_sample_problem(maps: _Maps, xs: torch.Tensor, gen: torch.Generator) -> str | None:
    """Why f is not a deterministic per-sample map (batch statistics, dropout), or None."""
    probe = xs[:8] if xs.shape[0] >= 2 else torch.cat([xs, torch.rand(xs.shape, generator=gen).to(xs)])
    other = probe.clone()
    other[1:] = torch.rand(other[1:].shape, generator=gen).to(other)
    try:
        with torch.no_grad():
            a = maps.search(probe).double()
            b = maps.search(probe).double()
            c = maps.search(other).double()
    except Exception as e:
        maps.notes.append(f"per-sample independence not checked ({_line(e)})")
        return None
    tol = 1e-3 * float(a.abs().max()) + 1e-6
    if float((a - b).abs().max()) > tol:
        return "the model is not deterministic (dropout in train mode?); no witnessed lower bound"
    if float((a[0] - c[0]).abs().max()) > tol:
        return (
            "the model's output for a sample depends on the rest of its batch (batch statistics, e.g. "
            "BatchNorm of a train-mode model or export); no witnessed lower bound — use eval mode"
        )
    return None


def _g(f: Map, target: str) -> Map:
    return f if target == "A" else (lambda z: 2 * f(z) - z)


def _bshape(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return t.view(-1, *([1] * (like.dim() - 1)))


def _check_x(x: torch.Tensor, notes: list[str]) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or x.dim() < 2 or x.shape[0] < 1:
        raise RlipError("x must be a non-empty batch of inputs (N, C, H, W)")
    lo, hi = float(x.min()), float(x.max())
    if lo < 0 or hi > 1:
        notes.append(f"inputs outside [0, 1] (range [{lo:.3g}, {hi:.3g}]) were clamped")
        x = x.clamp(0, 1)
    return x.detach()

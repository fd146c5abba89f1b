"""Jacobian-vector products of a batched map: the one JVP/VJP helper of the package.

`JacobianProducts(f, x, target, method)` gives products with M = J_f(x) (target "A") or with
M = 2J_f(x) − I (target "reflection", defined when f keeps the shape of its input), for a batch
x (N, ...) whose samples f processes independently (BatchNorm in eval mode), so that the batch
Jacobian is block-diagonal and each sample's block acts on its own slice:

- `jvp(u)` = M u, `vjp(v)` = Mᵀ v, for u of x's shape and v of f(x)'s shape.

How the JVP is taken (`method`):
- "double_backward": y = f(x), g = Jᵀw by a backward pass with create_graph (w = 0, g is linear
  in w), then J u = ∂(g·u)/∂w — one graph per batch, reused by every product;
- "forward": a forward-mode dual pass (torch.autograd.forward_ad), differentiable in reverse mode;
  each product re-runs f, and `vjp` uses the output of the latest pass;
- "finite_difference": (f(x + h u/2) − f(x − h u/2)) / h with a per-sample step h, no graph
  (for maps without double backward); the VJP is still by autograd.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
import torch.autograd.forward_ad as fwAD

from robustbench_lip.errors import RlipError

Target = Literal["A", "reflection"]
Method = Literal["double_backward", "forward", "finite_difference"]
Map = Callable[[torch.Tensor], torch.Tensor]
TARGETS: tuple[str, ...] = ("A", "reflection")
METHODS: tuple[str, ...] = ("double_backward", "forward", "finite_difference")


def sample_norms(t: torch.Tensor) -> torch.Tensor:
    """(N,) Euclidean norm of each sample of t (N, ...)."""
    return t.flatten(1).norm(dim=1)


def unit_samples(t: torch.Tensor) -> torch.Tensor:
    """t (N, ...) with each sample scaled to unit Euclidean norm (zero samples stay ≈ 0)."""
    n = sample_norms(t).clamp_min(1e-30)
    return t / n.view(-1, *([1] * (t.dim() - 1)))


def check_target(target: str, in_shape: torch.Size, out_shape: torch.Size) -> None:
    """Raise RlipError for an unknown target or a reflection of a shape-changing map."""
    if target not in TARGETS:
        raise RlipError(f"unknown target {target!r}; expected 'A' or 'reflection'")
    if target == "reflection" and tuple(in_shape) != tuple(out_shape):
        raise RlipError(
            "the reflection R = 2A − I needs an output shape equal to the input shape; "
            f"this model maps {tuple(in_shape[1:])} → {tuple(out_shape[1:])}; use target 'A'"
        )


class JacobianProducts:
    """Products with M = J_f(x) or 2J_f(x) − I at the batch x (N, ...); see the module docstring.

    x is used as given when it requires grad (so that products may be differentiated with respect
    to it), else as a detached copy that does. fd_step: the per-sample step h of
    "finite_difference", broadcastable to x (e.g. (N, 1, 1, 1)). Products are taken with grad
    enabled whatever the caller's mode; f's train/eval modes are not touched.
    """

    def __init__(
        self,
        f: Map,
        x: torch.Tensor,
        target: str = "A",
        method: str = "double_backward",
        fd_step: torch.Tensor | float | None = None,
    ) -> None:
        if method not in METHODS:
            raise ValueError(f"unknown JVP method {method!r}; expected one of {', '.join(METHODS)}")
        if method == "finite_difference" and fd_step is None:
            raise ValueError("the finite-difference JVP needs fd_step")
        self.f, self.method, self.fd_step = f, method, fd_step
        self.target = target
        self.reflection = target == "reflection"
        self.x = x if x.requires_grad else x.detach().requires_grad_(True)
        self.y: torch.Tensor | None = None
        if method == "forward":
            check_target(target, x.shape, x.shape)  # the name; shapes are checked by the first pass
            return  # y comes from the first dual pass
        with torch.enable_grad():
            self.y = f(self.x)
            check_target(target, self.x.shape, self.y.shape)
            if method == "double_backward":
                self._w = torch.zeros_like(self.y, requires_grad=True)
                (self._g,) = torch.autograd.grad(self.y, self.x, self._w, create_graph=True)  # Jᵀw

    def _reflect(self, ju: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        return 2 * ju - u if self.reflection else ju

    def jvp(self, u: torch.Tensor, create_graph: bool = False) -> torch.Tensor:
        """M u for u of x's shape; with create_graph=True the result is differentiable (w.r.t. f's
        parameters and x; always so for "forward", never for "finite_difference")."""
        if self.method == "double_backward":
            with torch.enable_grad():
                (ju,) = torch.autograd.grad(self._g, self._w, u, retain_graph=True, create_graph=create_graph)
            return self._reflect(ju, u)
        if self.method == "forward":
            with torch.enable_grad(), fwAD.dual_level():
                yd = self.f(fwAD.make_dual(self.x, u))
                y, ju = fwAD.unpack_dual(yd)
            if ju is None:  # the output does not depend on the input
                ju = torch.zeros_like(y)
            check_target(self.target, self.x.shape, y.shape)
            self.y = y
            return self._reflect(ju, u)
        with torch.no_grad():
            h = self.fd_step
            ju = (self.f(self.x + h * u / 2) - self.f(self.x - h * u / 2)) / h  # type: ignore[operator]
        return self._reflect(ju, u)

    def vjp(self, v: torch.Tensor, create_graph: bool = False) -> torch.Tensor:
        """Mᵀ v for v of f(x)'s shape (v is detached unless create_graph)."""
        if self.y is None:  # "forward" before any product
            with torch.enable_grad():
                self.y = self.f(self.x)
            check_target(self.target, self.x.shape, self.y.shape)
        v = v if create_graph else v.detach()
        with torch.enable_grad():
            (g,) = torch.autograd.grad(self.y, self.x, v, retain_graph=True, create_graph=create_graph)
        return self._reflect(g, v)

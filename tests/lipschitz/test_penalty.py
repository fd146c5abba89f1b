"""The Lipschitz penalty: value against the dense Jacobian, gradient, BatchNorm safety, state."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from robustbench_lip.errors import RlipError
from robustbench_lip.lipschitz.jvp import JacobianProducts
from robustbench_lip.lipschitz.penalty import REFERENCE, LipschitzPenalty, PenaltyConfig
from tests.helpers.oracle import dense_sigma


def _i2i() -> nn.Module:
    torch.manual_seed(4)
    return nn.Sequential(
        nn.Conv2d(1, 6, 3, padding=1), nn.BatchNorm2d(6), nn.Tanh(), nn.Conv2d(6, 1, 3, padding=1)
    ).double()  # fmt: skip


def _clf() -> nn.Module:
    torch.manual_seed(5)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 16, 3)
    ).double()  # fmt: skip


def with_batch_stats(f: nn.Module, x: torch.Tensor) -> nn.Module:
    """An eval-mode copy of f whose BatchNorm running statistics are the batch statistics of x
    (biased variance): the network whose σ the bn="batch" penalty measures (independent truth)."""
    g = copy.deepcopy(f)
    for m in g.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None  # cumulative average over one batch = that batch's statistics
    g.train()
    with torch.no_grad():
        g(x)
    for m in g.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            n = x.shape[0] * x[0, 0].numel()
            m.running_var.mul_((n - 1) / n)  # BatchNorm stores the unbiased variance
    return g.eval()


def _x(n: int = 4, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 1, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("target", ["A", "reflection"])
def test_forward_jvp_matches_dense_jacobian(target: str) -> None:
    f = _i2i().eval()
    x = _x(2)
    u = torch.randn_like(x)
    v = JacobianProducts(f, x, target, method="forward").jvp(u)
    for i in range(2):
        jac = torch.autograd.functional.jacobian(lambda z: f(z[None])[0], x[i]).reshape(16, 16)
        if target == "reflection":
            jac = 2 * jac - torch.eye(16, dtype=jac.dtype)
        torch.testing.assert_close(v[i].flatten(), jac @ u[i].flatten())


@pytest.mark.parametrize(("target", "bn"), [("A", "batch"), ("reflection", "batch"), ("A", "running")])
def test_warm_started_penalty_converges_to_dense_sigma(target: str, bn: str) -> None:
    f = _i2i().eval()
    x = _x(4)
    lam, eps = 0.3, 0.2
    pen = LipschitzPenalty(
        PenaltyConfig(lam=lam, target=target, eps=eps, subbatch=None, warm_start=True, bn=bn, hard=0), seed=0
    )
    for _ in range(300):  # one warm-started power iteration per step on the same batch
        out = pen(f, x)
    truth = dense_sigma(with_batch_stats(f, x) if bn == "batch" else f, x, target == "reflection")
    torch.testing.assert_close(out.sigma, truth, rtol=1e-3, atol=0)
    expected = lam * torch.clamp(truth**2, min=1 - eps).max()
    torch.testing.assert_close(out.value.detach(), expected, rtol=2e-3, atol=0)
    ref = LipschitzPenalty(
        PenaltyConfig(**{**REFERENCE.to_dict(), "lam": lam, "target": target, "iters": 300, "bn": bn})
    )
    torch.testing.assert_close(ref(f, x).sigma, truth, rtol=1e-3, atol=0)


@pytest.mark.parametrize("method", ["forward", "double_backward"])
def test_gradient_finite_and_lowers_sigma(method: str) -> None:
    f = _i2i()
    f.train()  # the penalty must switch to eval-mode BN itself (3rd-order train-mode BN fails)
    x = _x(8, seed=1)
    before = dense_sigma(with_batch_stats(f, x), x, False).max()
    f.train()
    bn = f[1]
    stats = (bn.running_mean.clone(), bn.running_var.clone(), bn.num_batches_tracked.clone())
    pen = LipschitzPenalty(PenaltyConfig(lam=1.0, target="A", eps=1.0, iters=3, method=method, subbatch=None))
    opt = torch.optim.SGD(f.parameters(), lr=0.01)
    for _ in range(5):
        opt.zero_grad()
        out = pen(f, x)
        out.value.backward()
        grads = [p.grad for p in f.parameters() if p.grad is not None]  # biases do not move J
        assert len(grads) >= 3 and all(bool(torch.isfinite(g).all()) for g in grads)
        assert any(float(g.abs().max()) > 0 for g in grads)
        opt.step()
    assert f.training and all(m.training for m in f.modules())
    torch.testing.assert_close(bn.running_mean, stats[0], rtol=0, atol=0)
    torch.testing.assert_close(bn.running_var, stats[1], rtol=0, atol=0)
    assert int(bn.num_batches_tracked) == int(stats[2])
    after = dense_sigma(with_batch_stats(f, x), x, False).max()
    assert after < 0.9 * before


def test_hinge_zero_below_one_and_every_k() -> None:
    f = _clf().eval()
    with torch.no_grad():
        for p in f.parameters():
            p.mul_(1e-3)  # σ ≪ 1 → hinge at 1 − eps, zero gradient
    pen = LipschitzPenalty(PenaltyConfig(lam=2.0, eps=0.5, every=3, subbatch=2))
    x = _x(5)
    outs = [pen(f, x) for _ in range(6)]
    assert [o.applied for o in outs] == [True, False, False, True, False, False]
    assert outs[0].sigma.shape == (2,)
    torch.testing.assert_close(outs[0].value, torch.tensor(2.0 * 3 * 0.5, dtype=outs[0].value.dtype))
    assert float(outs[1].value) == 0.0
    outs[3].value.backward()
    assert all(p.grad is None or float(p.grad.abs().max()) == 0 for p in f.parameters())


def test_interp_points_and_state_round_trip() -> None:
    f = _i2i().eval()
    x = _x(6, seed=2)
    cfg = PenaltyConfig(lam=1.0, points="interp", subbatch=3, target="reflection")
    a = LipschitzPenalty(cfg, seed=7)
    pts = a._points(x, 0)
    assert pts.shape == (3, 1, 4, 4)
    assert not torch.allclose(pts, x[:3])
    assert bool((pts >= x.min(0).values - 1e-12).all() and (pts <= x.max(0).values + 1e-12).all())
    a(f, x)
    b = LipschitzPenalty(cfg, seed=123)
    b.load_state_dict(a.state_dict())
    torch.testing.assert_close(a(f, x).value, b(f, x).value, rtol=0, atol=0)


def test_bad_settings() -> None:
    with pytest.raises(RlipError, match="λ"):
        PenaltyConfig(lam=-1.0)
    with pytest.raises(RlipError, match="λ"):
        PenaltyConfig(lam=float("nan"))
    with pytest.raises(RlipError, match="target"):
        PenaltyConfig(target="B")
    with pytest.raises(RlipError, match="reflection"):
        LipschitzPenalty(PenaltyConfig(lam=1.0, target="reflection"))(_clf(), _x(2))


def test_default_target_is_the_reflection_where_defined() -> None:
    """target None: R = 2A − I for a model whose config defines it, A otherwise (as TrainConfig)."""
    from types import SimpleNamespace

    pen = LipschitzPenalty(PenaltyConfig(lam=1.0))
    f = _i2i().eval()
    assert pen.target(f) == "A"
    f.config = SimpleNamespace(reflection_defined=True)
    assert pen.target(f) == "reflection"
    x = _x(3)
    truth = dense_sigma(with_batch_stats(f, x), x, True)
    out = LipschitzPenalty(PenaltyConfig(lam=1.0, subbatch=None, hard=0, iters=200), seed=0)(f, x)
    torch.testing.assert_close(out.sigma, truth, rtol=1e-3, atol=0)
    assert LipschitzPenalty(PenaltyConfig(lam=1.0, target="A")).target(f) == "A"


def test_default_sigma_is_a_real_estimate_in_one_step() -> None:
    """One fresh iteration before the final product: a lower estimate close to the dense σ
    (‖J u₀‖ of a random u₀ alone would be far below it)."""
    f = _i2i().eval()
    x = _x(6, seed=3)
    truth = dense_sigma(with_batch_stats(f, x), x, False)
    out = LipschitzPenalty(PenaltyConfig(lam=1.0, subbatch=None), seed=0)(f, x)
    assert bool((out.sigma <= truth * (1 + 1e-9)).all())
    assert float(out.sigma.max()) >= 0.8 * float(truth.max())
    u0 = torch.randn(x.shape, dtype=x.dtype, generator=torch.Generator().manual_seed(0))
    u0 = u0 / u0.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    v0 = JacobianProducts(with_batch_stats(f, x), x, "A", method="forward").jvp(u0).detach()
    assert float(v0.flatten(1).norm(dim=1).max()) < float(out.sigma.max())


def test_hard_points_carry_the_worst_points_between_steps() -> None:
    """hard=2: the two points of highest σ of step 1 are re-evaluated at step 2 (σ against the dense
    Jacobian of the running-statistics network), beside the first subbatch−2 points of the new batch."""
    f = _i2i().eval()
    x1, x2 = _x(6, seed=5), _x(6, seed=6)
    cfg = PenaltyConfig(lam=1.0, subbatch=5, hard=2, iters=60, bn="running", target="A")
    pen = LipschitzPenalty(cfg, seed=0)
    first = pen(f, x1)
    assert first.sigma.shape == (5,)  # no hard points yet: the batch's first 5
    truth1 = dense_sigma(f, x1[:5], False)
    top = torch.argsort(truth1, descending=True)[:2]
    second = pen(f, x2)
    assert second.sigma.shape == (5,)
    torch.testing.assert_close(second.sigma[:2], truth1[top], rtol=1e-4, atol=0)
    torch.testing.assert_close(second.sigma[2:], dense_sigma(f, x2[:3], False), rtol=1e-4, atol=0)
    clone = LipschitzPenalty(cfg, seed=9)
    clone.load_state_dict(pen.state_dict())
    torch.testing.assert_close(clone(f, x1).value, pen(f, x1).value, rtol=0, atol=0)
    with pytest.raises(RlipError, match="hard"):
        PenaltyConfig(hard=-1)

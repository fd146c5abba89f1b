"""Block-pattern rules against dense float64 Jacobians: the SLL residual step, L2-norm pooling, padding
+ conv as one operator, conv∘diag(d), and concatenations that repeat a node. Each pattern is also
broken one assumption at a time: it must then not be recognised, and the bound stays sound."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tests.helpers.oracle import dense_truth
from tests.helpers.patterns import TOL, assert_sound, certify

SLL = "SLL residual step"


def sll_t(w: torch.Tensor) -> torch.Tensor:
    """SLL's T (q = 1): t_i = 1 / Σ_j |W Wᵀ|_ij over channels and relative shifts."""
    if w.dim() == 4:
        gram = F.conv2d(w, w, padding=(w.shape[2] - 1, w.shape[3] - 1))
        return 1.0 / gram.abs().sum(dim=(1, 2, 3))
    return 1.0 / (w @ w.t()).abs().sum(dim=1)


class ConvSLL(nn.Module):
    """x − c·convT(t·σ(conv(x, W, b)), W2); every knob can break one assumption of the pattern."""

    def __init__(self, c_in=3, hidden=5, k=3, c=2.0, t_scale=1.0, act=F.relu, pre=1.0, **kw) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(c_in * 7 + hidden)
        self.w = nn.Parameter(torch.randn(hidden, c_in, k, k, generator=g) * 0.4)
        self.b = nn.Parameter(torch.randn(hidden, generator=g) * 0.3)
        self.c, self.t_scale, self.act, self.pre = c, t_scale, act, pre
        self.stride, self.pad, self.out_pad = kw.get("stride", 1), kw.get("pad", k // 2), kw.get("out_pad", 0)
        self.pad_t, self.dil_t = kw.get("pad_t", self.pad), kw.get("dil_t", 1)
        self.w2_scale, self.t_neg = kw.get("w2_scale", 1.0), kw.get("t_neg", False)

    def forward(self, x):
        t = sll_t(self.w) * self.t_scale
        if self.t_neg:
            t = t * torch.linspace(-1.0, 1.0, t.numel())
        u = self.act(self.pre * F.conv2d(x, self.w, self.b, stride=self.stride, padding=self.pad))
        v = t[None, :, None, None] * u
        y = F.conv_transpose2d(
            v,
            self.w * self.w2_scale,
            stride=self.stride,
            padding=self.pad_t,
            output_padding=self.out_pad,
            dilation=self.dil_t,
        )
        return x - self.c * y


class DenseSLL(nn.Module):
    """x − c·linear(t·relu(linear(x, W, b)), Wᵀ) in three spellings."""

    def __init__(self, n=6, hidden=9, c=2.0, spelling="sub", t_scale=1.0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(n + hidden)
        self.w = nn.Parameter(torch.randn(hidden, n, generator=g) * 0.5)
        self.b = nn.Parameter(torch.randn(hidden, generator=g))
        self.c, self.spelling, self.t_scale = c, spelling, t_scale

    def forward(self, x):
        t = sll_t(self.w) * self.t_scale
        y = F.linear(t * F.relu(F.linear(x, self.w, self.b)), self.w.t(), x.new_ones(x.shape[-1]))
        if self.spelling == "add-neg":
            return x + (-self.c) * y
        if self.spelling == "alpha":
            return torch.sub(x, y, alpha=self.c)
        if self.spelling == "add-alpha":
            return torch.add(x, y, alpha=-self.c)
        if self.spelling == "scalar-t":  # t folded: 0.5·relu, then a per-channel t
            y = F.linear((2 * t) * (0.5 * F.relu(F.linear(x, self.w, self.b))), self.w.t())
        return x - self.c * y


POSITIVE = [
    ("conv-sll", lambda: ConvSLL(), (3, 8, 8), 1.0),
    ("conv-sll-k5-wide", lambda: ConvSLL(4, 7, 5), (4, 6, 6), 1.0),
    ("conv-sll-stride2", lambda: ConvSLL(2, 6, 3, stride=2, out_pad=1), (2, 8, 8), 1.0),
    ("conv-sll-tanh", lambda: ConvSLL(3, 4, act=torch.tanh), (3, 6, 6), 1.0),
    ("conv-sll-pre-half", lambda: ConvSLL(3, 4, pre=0.5), (3, 6, 6), 1.0),
    ("conv-sll-t-times-3", lambda: ConvSLL(2, 3, t_scale=3.0), (2, 6, 6), None),
    ("conv-sll-c5", lambda: ConvSLL(2, 3, c=5.0), (2, 6, 6), None),
    ("dense-sll", lambda: DenseSLL(), (6,), 1.0),
    ("dense-sll-add-neg", lambda: DenseSLL(5, 4, spelling="add-neg"), (5,), 1.0),
    ("dense-sll-alpha", lambda: DenseSLL(7, 3, spelling="alpha"), (7,), 1.0),
    ("dense-sll-add-alpha", lambda: DenseSLL(6, 5, spelling="add-alpha"), (6,), 1.0),
    ("dense-sll-scalar-t", lambda: DenseSLL(6, 5, spelling="scalar-t"), (6,), 1.0),
    ("dense-sll-t-times-4", lambda: DenseSLL(4, 6, t_scale=4.0), (4,), None),
]


@pytest.mark.parametrize("name,factory,shape,exact", POSITIVE, ids=[c[0] for c in POSITIVE])
def test_sll_step_is_recognised_and_sound(name, factory, shape, exact):
    torch.manual_seed(0)
    model = factory().eval()
    bound, truth, methods = assert_sound(model, shape)
    assert any(SLL in m for m in methods), methods
    if exact is not None:
        assert bound <= exact * (1 + 1e-5), (bound, methods)
    else:  # a T too large for the SLL guarantee: the bound is max(1, c‖M‖²−1) > 1, still near the truth
        assert bound <= 1.5 * truth, (bound, truth)


NEGATIVE = [
    ("other-kernel", lambda: ConvSLL(w2_scale=1.5)),
    ("negative-t", lambda: ConvSLL(t_neg=True)),
    ("non-monotone-activation", lambda: ConvSLL(act=lambda v: F.leaky_relu(v, -0.7))),
    ("steep-activation", lambda: ConvSLL(act=lambda v: F.leaky_relu(v, 2.0))),
    ("pre-scaled-by-3", lambda: ConvSLL(pre=3.0)),
    ("plus-sign", lambda: ConvSLL(c=-2.0)),
    ("mismatched-dilation", lambda: ConvSLL(pad_t=2, dil_t=2)),
]


@pytest.mark.parametrize("name,factory", NEGATIVE, ids=[c[0] for c in NEGATIVE])
def test_a_broken_sll_step_is_not_recognised(name, factory):
    model = factory().eval()
    _, _, methods = assert_sound(model, (3, 6, 6))
    assert not any(SLL in m for m in methods), methods


def test_an_sll_step_whose_t_comes_from_a_random_draw_is_not_recognised():
    """t·(1 + 0·u), u drawn at every call: the value equals t, but it is computed from a random draw,
    so T is not a constant of the pattern, and the output depends on a draw: null."""

    class Drawn(ConvSLL):
        def forward(self, x):
            t = sll_t(self.w) * (1.0 + 0.0 * torch.rand(self.w.shape[0]))
            u = F.relu(F.conv2d(x, self.w, self.b, padding=1))
            return x - 2 * F.conv_transpose2d(t[None, :, None, None] * u, self.w, padding=1)

    from robustbench_lip.lipschitz.bounds import upper_bound

    ub = upper_bound(Drawn().eval(), (3, 6, 6))
    assert ub.upper is None and any("random draw" in r for r in ub.reasons), ub.reasons
    assert not any(SLL in layer.method for layer in ub.layers)


def test_sll_on_another_input_is_not_recognised():
    class Shifted(ConvSLL):
        def forward(self, x):  # the branch reads 2x, the skip reads x
            t = sll_t(self.w)
            return x - 2 * F.conv_transpose2d(
                t[None, :, None, None] * F.relu(F.conv2d(2 * x, self.w, padding=1)), self.w, padding=1
            )

    _, _, methods = assert_sound(Shifted().eval(), (3, 6, 6))
    assert not any(SLL in m for m in methods)


class Fn(nn.Module):
    def __init__(self, fn) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


L2POOL = [  # (name, fn, exact constant or None)
    ("lp-pool-k2", lambda x: F.lp_pool2d(x, 2, 2), 1.0),
    ("lp-pool-k3-stride1", lambda x: F.lp_pool2d(x, 2, 3, stride=1), 3.0),  # coverage 9, scale 9/9
    ("lp-pool-ceil", lambda x: F.lp_pool2d(x, 2, 3, stride=2, ceil_mode=True), 2.0),
    ("hand-sqrt", lambda x: torch.sqrt(4 * F.avg_pool2d(x * x, 2)), 1.0),
    ("hand-excl-pad", lambda x: torch.sqrt(9 * F.avg_pool2d(x**2, 3, 2, 1, count_include_pad=False)), None),
    ("hand-divisor", lambda x: (2.5 * F.avg_pool2d(x**2, 2, divisor_override=3)) ** 0.5, math.sqrt(2.5 / 3)),
    ("hand-eps", lambda x: torch.sqrt(4 * F.avg_pool2d(x * x, 2) + 1e-3), 1.0),
    ("hand-eps-scaled", lambda x: (3 * (F.avg_pool2d(x**2, 2) + 0.5)) ** 0.5, math.sqrt(0.75)),
    ("hand-scale-6", lambda x: torch.sqrt(6 * F.avg_pool2d(x * x, 2)), math.sqrt(1.5)),
]


@pytest.mark.parametrize("name,fn,exact", L2POOL, ids=[c[0] for c in L2POOL])
def test_l2_norm_pooling(name, fn, exact):
    bound, _, methods = assert_sound(Fn(fn).eval(), (2, 7, 7))
    assert any("L2-norm pooling" in m for m in methods), methods
    if exact is not None:
        assert bound <= exact * (1 + 1e-6), (bound, exact)


@pytest.mark.parametrize(
    "fn",
    [
        lambda x: torch.sqrt(4 * F.avg_pool2d(x.abs() + 1, 2)),  # not a square
        lambda x: torch.sqrt(4 * F.avg_pool2d(x * x, 2) - 1e-3),  # a negative offset: a root near 0
        lambda x: (-4 * F.avg_pool2d(x * x, 2) + 100) ** 0.5,  # a negative scale
    ],
)
def test_a_square_root_of_something_else_is_not_lipschitz(fn):
    from robustbench_lip.lipschitz.bounds import upper_bound

    ub = upper_bound(Fn(fn).eval(), (2, 4, 4))
    assert ub.upper is None and ub.reasons


@pytest.mark.parametrize("mode", ["circular", "reflect", "replicate"])
@pytest.mark.parametrize("stride,dil", [(1, 1), (2, 1), (1, 2)])
def test_padding_and_conv_as_one_operator(mode, stride, dil):
    torch.manual_seed(stride + 3 * dil)
    conv = nn.Conv2d(3, 4, 3, padding=dil, padding_mode=mode, stride=stride, dilation=dil).eval()
    bound, truth, methods = assert_sound(conv, (3, 8, 8))
    assert any(f"{mode}-padded conv as one operator" in m for m in methods), methods
    if mode == "circular" and stride == 1:  # the exact circular norm
        assert bound <= truth * (1 + 1e-5)


def test_circular_mode_without_padding_is_a_plain_conv():
    conv = nn.Conv2d(3, 4, 2, stride=2, padding=0, padding_mode="circular").eval()
    bound, _, methods = assert_sound(conv, (3, 8, 8))
    plain = nn.Conv2d(3, 4, 2, stride=2).eval()
    plain.load_state_dict(conv.state_dict())
    assert bound <= certify(plain, (3, 8, 8))[0] * (1 + 1e-9)
    assert not any("padded conv as one operator" in m for m in methods)


class PadTwice(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 3)

    def forward(self, x):
        p = F.pad(x, (1, 1, 1, 1), mode="circular")
        return self.conv(p) + p[:, :, 1:-1, 1:-1]


def test_a_padded_tensor_used_twice_is_bounded_by_the_general_rules():
    model = PadTwice()
    bound, _, methods = assert_sound(model.eval(), (2, 6, 6))
    assert math.isfinite(bound) and not any("padded conv as one operator" in m for m in methods)


def test_aol_rescaling_is_bounded_jointly():
    class Aol(nn.Module):  # AOL: d_j = (Σ_k |WᵀW|_jk)^(-1/2), so ‖W·diag(d)‖ ≤ 1
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.randn(5, 3, 3, 3, generator=torch.Generator().manual_seed(4)))

        def forward(self, x):
            wt = self.w.transpose(0, 1)
            d = F.conv2d(wt, wt, padding=2).abs().sum(dim=(1, 2, 3)).rsqrt()
            return F.conv2d(x * d[None, :, None, None], self.w, padding=1)

    model = Aol()
    bound, _, methods = assert_sound(model.eval(), (3, 8, 8))
    assert any("AOL rescaling" in m for m in methods) and bound <= 1.05


REPEATS = [  # (name, fn of x (1, 4), the exact constant)
    (
        "maxmin-repeated-max",
        lambda a, b: torch.cat([torch.maximum(a, b), torch.minimum(a, b)] + [torch.maximum(a, b)] * 2, 1),
        math.sqrt(3),
    ),
    ("groupsort-halves-twice", None, math.sqrt(2)),
    (
        "maxmin-second-max-node",
        lambda a, b: torch.cat([torch.maximum(a, b), torch.minimum(a, b), torch.maximum(b, a)], 1),
        math.sqrt(2),
    ),
    ("slice-twice", lambda a, b: torch.cat([a, b, a], 1), math.sqrt(2)),
]


@pytest.mark.parametrize("name,fn,exact", REPEATS, ids=[c[0] for c in REPEATS])
def test_a_concatenation_that_repeats_a_node_pays_for_each_copy(name, fn, exact):
    if fn is None:

        def model_fn(x):
            v = x.view(x.shape[0], 2, 2)
            lo, hi = v.min(2, keepdim=True)[0], v.max(2, keepdim=True)[0]
            return torch.cat([lo, hi, lo, hi], dim=2).flatten(1)
    else:

        def model_fn(x):
            return fn(x[:, :2], x[:, 2:])

    model = Fn(model_fn).eval()
    bound, _ = certify(model, (4,))
    truth = dense_truth(model, (4,), points=6)
    assert truth <= bound * (1 + TOL)
    assert truth >= exact * (1 - 1e-9)  # the instance reaches the constant, so the check has teeth
    assert bound <= exact * (1 + 1e-5)


class _Reflection(nn.Module):
    def __init__(self, a: nn.Module) -> None:
        super().__init__()
        self.a = a

    def forward(self, x):
        return 2 * self.a(x) - x


@pytest.mark.parametrize("t_scale", [0.2, 0.45, 1.0])
def test_sll_step_keeps_its_identity_part_for_r(t_scale):
    """R = 2h − I of h = x − 2·Wᵀ·T·σ(W·x + b): its Jacobian I − 4·MᵀDM has norm max(1, 4‖M‖² − 1),
    1 when ‖M‖² ≤ ½ (not 2·U(h) + 1 = 3)."""
    from robustbench_lip.lipschitz.bounds import upper_bound

    model = DenseSLL(6, 8, t_scale=t_scale).eval()
    ub = upper_bound(model, (6,))
    r = _Reflection(model).eval()
    r_truth = dense_truth(r, (6,), points=6)
    assert ub.reflection is not None and r_truth <= ub.reflection * (1 + TOL), (r_truth, ub.reflection)
    if t_scale <= 0.45:  # ‖M‖² ≤ 0.45·‖M_SLL‖² ≤ 0.45: R is non-expansive
        assert ub.reflection <= 1 + 1e-5, ub.reflection


@pytest.mark.parametrize("mode", ["circular", "reflect"])
def test_a_padded_conv_folds_the_batchnorm_it_feeds(mode):
    torch.manual_seed(8)
    bn = nn.BatchNorm2d(4).eval()
    with torch.no_grad():
        bn.running_var.uniform_(0.05, 4.0)
        bn.weight.uniform_(-2.0, 2.0)
        bn.running_mean.normal_()
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, padding_mode=mode), bn).eval()
    bound, truth, methods = assert_sound(model, (3, 8, 8))
    assert any("BatchNorm folded" in m for m in methods), methods
    if mode == "circular":
        assert bound <= truth * (1 + 1e-5)


def _groupsort(x, k):
    v = x.view(x.shape[0], x.shape[1] // k, k, *x.shape[2:])
    return v.sort(dim=2).values.view_as(x)


@pytest.mark.parametrize(
    "name,fn,exact",
    [
        ("groupsort-3", lambda x: _groupsort(x, 3), 1.0),
        ("groupsort-6-scaled", lambda x: _groupsort(2.5 * x, 6), 2.5),
        (
            "groupsort-twice-in-a-cat",
            lambda x: torch.cat([_groupsort(x, 3), _groupsort(x, 3)], 1),
            math.sqrt(2),
        ),
        ("fullsort-then-flip", lambda x: x.flatten(1).sort(dim=1).values.flip(1), 1.0),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_groupsort(name, fn, exact):
    bound, truth, _ = assert_sound(Fn(fn).eval(), (6, 2, 2))
    assert truth >= exact * (1 - 1e-9) and bound <= exact * (1 + 1e-5), (bound, truth)


def test_an_sll_step_broadcast_into_copies_is_not_one():
    class Copies(DenseSLL):
        def forward(self, x):  # the branch gets a constant of 3 rows: the sum holds 3 copies of x
            t = sll_t(self.w)
            y = F.linear(t * F.relu(F.linear(x, self.w, self.b)), self.w.t()) + self.w.new_zeros(
                3, 1, x.shape[-1]
            )
            return x - 2.0 * y

    bound, truth, methods = assert_sound(Copies(5, 4).eval(), (5,))
    assert not any(SLL in m for m in methods) and truth > 1.5, (bound, truth)

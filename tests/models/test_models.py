"""Model registry, mResNet-18 (CAM identity, masks) and U-Nets: shapes, gradients, helpers."""

from __future__ import annotations

import inspect

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from robustbench_lip.config import DatasetInfo, ModelConfig
from robustbench_lip.errors import RlipError
from robustbench_lip.models import (
    can_segment,
    create_model,
    create_model_for,
    list_models,
    mask_logits,
    model_from_config,
    output_shape,
    predict_labels,
    predict_mask,
    register_model,
)

TINY = list_models("*tiny*")
ALL = list_models()


def _norm_kw(name: str, norm: str) -> dict[str, str]:
    """{"norm": norm} for models with a norm option; {} for those without one (the constrained
    families have no BatchNorm), where asking for "bn" skips the case."""
    if "norm" in inspect.signature(type(create_model(name)).__init__).parameters:
        return {"norm": norm}
    if norm == "bn":
        pytest.skip(f"{name} has no norm option")
    return {}


def _x(model: nn.Module, n: int = 2, seed: int = 1, size: tuple[int, int] | None = None) -> torch.Tensor:
    c, h, w = model.config.input_size
    h, w = size or (h, w)
    return torch.rand((n, c, h, w), generator=torch.Generator().manual_seed(seed))


def _randomise_bn(model: nn.Module) -> None:
    """Non-trivial BatchNorm statistics so eval mode is not the identity."""
    g = torch.Generator().manual_seed(3)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)


SHAPES = DatasetInfo(
    name="shapes",
    in_channels=3,
    image_size=(16, 16),
    num_classes=10,
    class_names=tuple(f"c{i}" for i in range(10)),
    has_masks=True,
    num_mask_classes=11,
    mean=(0.4, 0.5, 0.6),
    std=(0.2, 0.25, 0.3),
)
LESIONS = DatasetInfo(
    name="lesions",
    in_channels=1,
    image_size=(16, 16),
    num_classes=2,
    class_names=("clean", "lesion"),
    has_masks=True,
    num_mask_classes=2,
    mean=(0.5,),
    std=(0.5,),
)
NOMASKS = DatasetInfo(
    name="cifar-like", in_channels=3, image_size=(16, 16), num_classes=10, class_names=(), has_masks=False
)


def test_registry_names_and_patterns() -> None:
    for name in ("mresnet18", "mresnet18_w16", "mresnet18_w8", "unet", "unet_i2i"):
        assert name in ALL
    assert {"mresnet18_tiny", "unet_tiny", "unet_i2i_tiny"} <= set(TINY)
    assert all("tiny" in n for n in TINY)
    assert list_models("unet*") == sorted(n for n in ALL if n.startswith("unet"))
    assert ALL == sorted(ALL)


def test_unknown_name_and_option_are_one_line_errors() -> None:
    with pytest.raises(RlipError, match=r"mresnet18_w16") as e:
        create_model("mresnet18_w61")
    assert "\n" not in str(e.value)
    with pytest.raises(RlipError, match=r"unknown option.*widht.*valid:.*width"):
        create_model("mresnet18_tiny", widht=3)
    with pytest.raises(RlipError, match="norm"):
        create_model("unet_tiny", norm="layer")
    with pytest.raises(RlipError, match="upsampling"):
        create_model("unet_tiny", upsampling="nearest")
    with pytest.raises(RlipError, match="divisible"):
        create_model("unet_tiny", image_size=(18, 16))


def test_register_model_rejects_duplicates() -> None:
    with pytest.raises(ValueError, match="already registered"):

        @register_model(name="unet_tiny")
        def _dup(**kw: object) -> nn.Module:  # pragma: no cover - never called
            raise AssertionError

    assert "_dup" not in list_models()


@pytest.mark.parametrize("name", ALL)
def test_declared_output_shapes(name: str) -> None:
    model = create_model(name).eval()
    cfg = model.config
    assert isinstance(cfg, ModelConfig) and cfg.arch == name
    with torch.no_grad():
        y = model(_x(model, n=2))
    assert tuple(y.shape) == (2, *output_shape(cfg))
    assert torch.isfinite(y).all()
    assert cfg.reflection_defined == (tuple(y.shape[1:]) == tuple(cfg.input_size))
    assert cfg.reflection_defined == (cfg.task == "image2image")


@pytest.mark.parametrize("norm", ["bn", "none"])
@pytest.mark.parametrize("name", TINY)
def test_tiny_forward_backward(name: str, norm: str) -> None:
    model = create_model(name, **_norm_kw(name, norm)).train()
    x = _x(model, n=3)
    y = model(x)
    assert tuple(y.shape) == (3, *output_shape(model.config))
    assert torch.isfinite(y).all()
    y.square().mean().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0


@pytest.mark.parametrize("name", TINY)
def test_no_inplace_relu(name: str) -> None:
    model = create_model(name)
    assert not any(getattr(m, "inplace", False) for m in model.modules())


@pytest.mark.parametrize("name", TINY)
def test_double_backward_matches_jvp(name: str) -> None:
    """J u by the double-backward trick (grad twice with create_graph) equals a float64 central
    difference, and the penalty ‖J u‖² can be differentiated w.r.t. the parameters."""
    model = create_model(name).eval()
    _randomise_bn(model)
    g = torch.Generator().manual_seed(5)
    x = _x(model, n=2).requires_grad_(True)
    y = model(x)
    v = torch.zeros_like(y, requires_grad=True)
    (vjp,) = torch.autograd.grad(y, x, grad_outputs=v, create_graph=True)
    u = torch.randn(x.shape, generator=g)
    (ju,) = torch.autograd.grad(vjp, v, grad_outputs=u, create_graph=True)
    ref = create_model(name).eval().double()
    ref.load_state_dict(model.state_dict())
    xd, ud, h = x.detach().double(), u.double(), 1e-6
    with torch.no_grad():
        ju_ref = (ref(xd + h * ud) - ref(xd - h * ud)) / (2 * h)
    torch.testing.assert_close(ju.double(), ju_ref, atol=1e-4, rtol=1e-4)
    ju.square().sum().backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(t).all() for t in grads)
    assert sum(float(t.abs().sum()) for t in grads) > 0


@pytest.mark.parametrize("norm", ["bn", "none"])
def test_cam_identity_and_segment_size(norm: str) -> None:
    model = create_model("mresnet18_tiny", norm=norm).eval()
    _randomise_bn(model)
    x = _x(model, n=4)
    logits = model(x)
    maps = model.class_maps(x)
    assert maps.shape[:2] == logits.shape and maps.shape[-1] > 1
    torch.testing.assert_close(logits, maps.mean(dim=(2, 3)), atol=1e-5, rtol=0)
    assert tuple(model.segment(x).shape) == (4, 10, 16, 16)
    x2 = _x(model, n=1, size=(24, 20))
    seg = model.segment(x2)
    assert tuple(seg.shape) == (1, 10, 24, 20)
    # bilinear upsampling of a map keeps its values within the map's range
    m2 = model.class_maps(x2)
    assert (seg.amax(dim=(2, 3)) <= m2.amax(dim=(2, 3)) + 1e-5).all()
    assert (seg.amin(dim=(2, 3)) >= m2.amin(dim=(2, 3)) - 1e-5).all()


def test_imagenet_stem_for_large_inputs() -> None:
    model = create_model("mresnet18_tiny", image_size=(96, 96)).eval()
    assert isinstance(model.stem[-1], nn.MaxPool2d)
    x = _x(model, n=1)
    assert model.class_maps(x).shape[-1] == 3  # 96 / 4 (stem) / 8 (stages)
    torch.testing.assert_close(model(x), model.class_maps(x).mean(dim=(2, 3)), atol=1e-5, rtol=0)
    assert not isinstance(create_model("mresnet18_tiny").stem[-1], nn.MaxPool2d)


@pytest.mark.parametrize("threshold", [-0.5, 0.0, 0.3, 0.5, 0.9, 1.5])
def test_mresnet_masks(threshold: float) -> None:
    model = create_model("mresnet18_tiny").eval()
    _randomise_bn(model)
    x = _x(model, n=4)
    mask = model.predict_mask(x, threshold=threshold)
    scores = model.mask_logits(x, threshold=threshold)
    assert mask.dtype == torch.int64 and tuple(mask.shape) == (4, 16, 16)
    assert tuple(scores.shape) == (4, 11, 16, 16)
    assert torch.equal(scores.argmax(dim=1), mask)
    pred = model(x).argmax(dim=1)
    for i in range(4):  # only background and the predicted class's label occur
        assert set(mask[i].unique().tolist()) <= {0, int(pred[i]) + 1}
    if threshold < 0:  # every pixel's normalised map (≥ 0) exceeds it
        assert torch.equal(mask, (pred + 1).view(-1, 1, 1).expand_as(mask))
    if threshold >= 1:
        assert (mask == 0).all()
    if 0 <= threshold < 1:  # the maximum of the normalised map is 1, so each image has a foreground pixel
        assert ((mask > 0).flatten(1).sum(1) > 0).all()


def test_mresnet_mask_threshold_matches_direct_normalisation() -> None:
    model = create_model("mresnet18_tiny").eval()
    x = _x(model, n=3)
    seg = model.segment(x)
    pred = model(x).argmax(dim=1)
    sel = seg[torch.arange(3), pred]
    norm = (sel - sel.amin(dim=(1, 2), keepdim=True)) / (
        sel.amax(dim=(1, 2), keepdim=True) - sel.amin(dim=(1, 2), keepdim=True)
    )
    expected = torch.where(norm > 0.5, pred.view(-1, 1, 1) + 1, torch.zeros_like(pred).view(-1, 1, 1))
    assert torch.equal(model.predict_mask(x), expected)


def test_mresnet_mask_logits_differentiable() -> None:
    model = create_model("mresnet18_tiny").eval()
    x = _x(model, n=2).requires_grad_(True)
    target = torch.randint(0, 11, (2, 16, 16), generator=torch.Generator().manual_seed(0))
    F.cross_entropy(mask_logits(model, x), target).backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_mresnet_offset_zero_class_zero_is_background() -> None:
    """With num_mask_classes == num_classes (lesions-style), class k maps to label k and class 0 to 0."""
    model = create_model("mresnet18_tiny", num_classes=2, num_mask_classes=2).eval()
    x = _x(model, n=2)
    with torch.no_grad():
        model.head.bias.copy_(torch.tensor([100.0, -100.0]))
    assert (model(x).argmax(1) == 0).all()
    assert (model.predict_mask(x) == 0).all()
    assert torch.equal(model.mask_logits(x).argmax(1), model.predict_mask(x))
    with torch.no_grad():
        model.head.bias.copy_(torch.tensor([-100.0, 100.0]))
    mask = model.predict_mask(x)
    assert set(mask.unique().tolist()) == {0, 1}
    assert torch.equal(model.mask_logits(x).argmax(1), mask)
    with pytest.raises(RlipError, match="num_mask_classes"):
        create_model("mresnet18_tiny", num_classes=2, num_mask_classes=5)


@pytest.mark.parametrize("upsampling", ["bilinear", "transpose"])
def test_unet_segmentation(upsampling: str) -> None:
    model = create_model("unet_tiny", upsampling=upsampling, num_classes=4).eval()
    x = _x(model, n=2)
    y = model(x)
    assert tuple(y.shape) == (2, 4, 16, 16)
    assert can_segment(model) and model.config.num_mask_classes == 4
    assert torch.equal(predict_mask(model, x), y.argmax(1))
    assert torch.equal(mask_logits(model, x), y)
    with pytest.raises(RlipError, match="divisible by 4"):
        model(torch.rand(1, 3, 18, 16))
    with pytest.raises(RlipError, match=r"\(N, 3, H, W\)"):
        model(torch.rand(1, 1, 16, 16))


@pytest.mark.parametrize("upsampling", ["bilinear", "transpose"])
def test_unet_i2i_binary(upsampling: str) -> None:
    model = create_model("unet_i2i_tiny", upsampling=upsampling).eval()
    cfg = model.config
    assert cfg.task == "image2image" and cfg.reflection_defined and cfg.num_mask_classes == 2
    x = _x(model, n=3)
    z = model(x)
    assert z.shape == x.shape
    scores = mask_logits(model, x)
    assert torch.equal(scores[:, 0], torch.zeros_like(z[:, 0])) and torch.equal(scores[:, 1], z[:, 0])
    assert torch.equal(predict_mask(model, x), (z[:, 0] > 0).long())
    assert torch.equal(scores.argmax(1), predict_mask(model, x))
    assert torch.equal(predict_labels(model, x), (z > 0).flatten(1).any(1).long())


def test_unet_i2i_multichannel_does_not_segment() -> None:
    model = create_model("unet_i2i_tiny", in_channels=3).eval()
    x = _x(model, n=1)
    assert model(x).shape == x.shape
    assert not can_segment(model)
    with pytest.raises(RlipError, match="does not"):
        mask_logits(model, x)
    with pytest.raises(RlipError):
        predict_labels(model, x)
    with pytest.raises(RlipError, match="1 channel"):
        create_model("unet_i2i_tiny", in_channels=3, num_mask_classes=2)


def test_normalisation_lives_inside_the_model() -> None:
    mean, std = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)
    normed = create_model("unet_tiny", mean=mean, std=std).eval()
    plain = create_model("unet_tiny").eval()
    state = {k: v for k, v in normed.state_dict().items() if not k.startswith("input_")}
    plain.load_state_dict(state, strict=False)
    x = _x(normed, n=2)
    manual = (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    torch.testing.assert_close(normed(x), plain(manual), atol=1e-5, rtol=1e-5)
    with pytest.raises(RlipError, match="std must be positive"):
        create_model("unet_tiny", mean=mean, std=(0.2, 0.0, 0.3))
    with pytest.raises(RlipError, match="3 input channel"):
        create_model("unet_tiny", mean=(0.5,), std=(0.5,))


def test_create_model_for_datasets() -> None:
    m = create_model_for("mresnet18_tiny", SHAPES)
    assert (m.config.in_channels, m.config.num_classes, m.config.num_mask_classes) == (3, 10, 11)
    assert m.config.input_size == (3, 16, 16) and m.config.mean == SHAPES.mean and m.config.std == SHAPES.std
    m = create_model_for("mresnet18_tiny", LESIONS)
    assert (m.config.in_channels, m.config.num_classes, m.config.num_mask_classes) == (1, 2, 2)
    m = create_model_for("mresnet18_tiny", NOMASKS)
    assert m.config.num_mask_classes == 11
    u = create_model_for("unet_tiny", SHAPES)
    assert u.config.num_classes == 11 and u.config.task == "segmentation"
    with pytest.raises(RlipError, match="no masks"):
        create_model_for("unet_tiny", NOMASKS)
    i = create_model_for("unet_i2i_tiny", LESIONS)
    assert i.config.input_size == (1, 16, 16) and i.config.num_mask_classes == 2 and can_segment(i)
    i3 = create_model_for("unet_i2i_tiny", SHAPES)
    assert i3.config.input_size == (3, 16, 16) and not can_segment(i3)
    assert create_model_for("unet_tiny", SHAPES, base_width=2).config.kwargs["base_width"] == 2


@pytest.mark.parametrize("name", TINY)
def test_model_from_config_rebuilds_the_architecture(name: str) -> None:
    c = create_model(name).config.in_channels
    model = create_model(name, mean=(0.3,) * c, std=(0.7,) * c, **_norm_kw(name, "none"))
    rebuilt = model_from_config(model.config)
    assert rebuilt.config == model.config
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {
        k: v.shape for k, v in model.state_dict().items()
    }


class _FakeSegmenter(nn.Module):
    """Returns fixed mask logits: the helpers' label rules are checked against hand-made masks."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        k = logits.shape[1]
        self.logits = logits
        self.config = ModelConfig("fake", "segmentation", 1, k, (1, *logits.shape[-2:]), num_mask_classes=k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits


def test_predict_labels_rules() -> None:
    # M = 4 (labels 1..3 = classes 0..2): image 0 mostly label 2 → class 1; image 1 all background →
    # the class with the largest mean foreground logit (label 3 → class 2).
    logits = torch.zeros(2, 4, 4, 4)
    logits[0, 2] = 5.0
    logits[0, 3, 0, :] = 9.0  # 4 pixels of label 3 vs 12 of label 2
    logits[1, 0] = 10.0
    logits[1, 3] = 1.0
    fake = _FakeSegmenter(logits)
    assert can_segment(fake)
    assert torch.equal(predict_mask(fake, torch.zeros(2, 1, 4, 4))[0, 0], torch.full((4,), 3))
    assert predict_labels(fake, torch.zeros(2, 1, 4, 4)).tolist() == [1, 2]
    # M = 2: presence of any foreground pixel
    binary = torch.zeros(2, 2, 3, 3)
    binary[0, 1, 1, 1] = 1.0
    assert predict_labels(_FakeSegmenter(binary), torch.zeros(2, 1, 3, 3)).tolist() == [1, 0]
    clf = create_model("mresnet18_tiny").eval()
    x = _x(clf, n=3)
    assert torch.equal(predict_labels(clf, x), clf(x).argmax(1))


def test_helpers_refuse_models_without_config() -> None:
    plain = nn.Conv2d(1, 1, 1)
    assert not can_segment(plain)
    with pytest.raises(RlipError, match="config"):
        predict_labels(plain, torch.zeros(1, 1, 2, 2))

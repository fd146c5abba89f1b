"""Built-in generated datasets (shapes, lesions), the dataset API, collate and the seeded loader."""

from __future__ import annotations

import hashlib
import math
import os
import subprocess
import sys

import pytest
import torch

from robustbench_lip.config import DatasetInfo
from robustbench_lip.data import (
    RlipDataset,
    collate,
    dataset_info,
    get_dataset,
    list_datasets,
    make_loader,
)
from robustbench_lip.data import lesions as lesions_mod
from robustbench_lip.data import shapes as shapes_mod
from robustbench_lip.errors import RlipError


def _digest(ds: RlipDataset) -> str:
    x, y, m = ds.tensors()
    h = hashlib.sha256()
    for t in (x, y, m):
        h.update(t.contiguous().numpy().tobytes())
    return h.hexdigest()


def test_list_datasets() -> None:
    assert list_datasets() == ["shapes", "lesions", "cifar10", "coco", "folder"]


def test_unknown_name_split_and_options_are_one_line_errors() -> None:
    with pytest.raises(RlipError, match="available: shapes, lesions, cifar10, coco, folder") as e:
        get_dataset("mnist")
    assert "\n" not in str(e.value)
    with pytest.raises(RlipError, match="available"):
        dataset_info("mnist")
    with pytest.raises(RlipError, match="split"):
        get_dataset("shapes", "val", n_val=3)
    with pytest.raises(RlipError, match="accepted: n_train, n_test, image_size, seed"):
        get_dataset("shapes", "train", n_train=4, colour=True)
    for bad in ({"n_train": 0}, {"image_size": 8}, {"image_size": 1000}, {"seed": -1}, {"n_train": 2.5}):
        with pytest.raises(RlipError, match="option"):
            get_dataset("lesions", "train", **bad)


def test_shapes_samples_are_consistent() -> None:
    ds = get_dataset("shapes", "train", n_train=300, seed=0)
    assert len(ds) == 300
    info = ds.info
    assert (info.in_channels, info.image_size, info.num_classes, info.num_mask_classes) == (
        3,
        (32, 32),
        10,
        11,
    )
    assert info.has_masks and info.mask_class_names[0] == "background" and info.class_names[3] == "star"
    image, label, mask = ds[5]
    assert image.dtype == torch.float32 and image.shape == (3, 32, 32)
    assert label.dtype == torch.int64 and label.ndim == 0
    assert mask.dtype == torch.int64 and mask.shape == (32, 32)
    x, y, m = ds.tensors()
    assert x.min() >= 0 and x.max() <= 1
    assert torch.equal((x * 255).round() / 255, x)  # 8-bit images: lossless export
    assert set(y.tolist()) == set(range(10))
    assert y.bincount(minlength=10).min() >= 20  # balanced classes
    # every mask holds exactly background and the image's shape label k+1 (a visible shape)
    for i in range(len(ds)):
        assert set(m[i].unique().tolist()) == {0, int(y[i]) + 1}
    frac = (m > 0).float().mean(dim=(1, 2))
    assert frac.min() > 0.03 and frac.max() < 0.7


def test_lesions_samples_are_consistent() -> None:
    ds = get_dataset("lesions", "test", n_test=200, image_size=48, seed=3)
    x, y, m = ds.tensors()
    assert x.shape == (200, 1, 48, 48) and m.shape == (200, 48, 48)
    assert ds.info.in_channels == 1 and ds.info.num_classes == 2 and ds.info.num_mask_classes == 2
    assert set(m.unique().tolist()) <= {0, 1}
    assert torch.equal(y, m.flatten(1).any(1).long())  # label 1 iff a lesion pixel
    assert 0.3 < y.float().mean() < 0.7
    # a lesion changes the image: pixels under lesions differ from the image's median level
    assert x.min() >= 0 and x.max() <= 1 and x.std() > 0.05


def test_lesions_large_size_works() -> None:
    ds = get_dataset("lesions", "train", n_train=3, image_size=256)
    assert ds.tensors()[0].shape == (3, 1, 256, 256)


@pytest.mark.parametrize("name", ["shapes", "lesions"])
def test_deterministic_seeded_and_split_distinct(name: str) -> None:
    a = get_dataset(name, "train", n_train=40, seed=7)
    b = get_dataset(name, "train", n_train=40, seed=7)
    assert _digest(a) == _digest(b)
    assert not torch.equal(a.tensors()[0], get_dataset(name, "train", n_train=40, seed=8).tensors()[0])
    assert not torch.equal(a.tensors()[0], get_dataset(name, "test", n_test=40, seed=7).tensors()[0])


def test_first_n_do_not_depend_on_n_across_chunks() -> None:
    cs = shapes_mod.chunk_size(32)
    small = get_dataset("shapes", "train", n_train=10).tensors()
    big = get_dataset("shapes", "train", n_train=cs + 20).tensors()
    for s, b in zip(small, big, strict=True):
        assert torch.equal(s, b[:10])
    # and the second chunk is not a copy of the first
    assert not torch.equal(big[0][cs : cs + 10], big[0][:10])


def test_generation_leaves_global_rng_alone() -> None:
    state = torch.get_rng_state()
    get_dataset("shapes", "train", n_train=8)
    get_dataset("lesions", "train", n_train=8)
    assert torch.equal(state, torch.get_rng_state())


def test_bit_identical_across_processes() -> None:
    """Another process (different thread count) generates exactly the same bytes."""
    code = (
        "import hashlib, torch\n"
        "from robustbench_lip.data import get_dataset\n"
        "h = hashlib.sha256()\n"
        "for name in ('shapes', 'lesions'):\n"
        "    x, y, m = get_dataset(name, 'test', n_test=40, seed=11).tensors()\n"
        "    for t in (x, y, m): h.update(t.contiguous().numpy().tobytes())\n"
        "print(h.hexdigest())\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    h = hashlib.sha256()
    for name in ("shapes", "lesions"):
        x, y, m = get_dataset(name, "test", n_test=40, seed=11).tensors()
        for t in (x, y, m):
            h.update(t.contiguous().numpy().tobytes())
    assert out.stdout.strip() == h.hexdigest()


def test_info_matches_and_options_rebuild_the_dataset() -> None:
    info = dataset_info("lesions", n_train=30, seed=2)
    ds = get_dataset("lesions", "train", n_train=30, seed=2)
    assert info == ds.info
    assert DatasetInfo.from_dict(info.to_dict()) == info
    again = get_dataset(info.name, "train", **info.options)
    assert _digest(again) == _digest(ds)


@pytest.mark.parametrize(
    ("name", "mean", "std", "n"),
    [("shapes", shapes_mod.MEAN, shapes_mod.STD, 1000), ("lesions", lesions_mod.MEAN, lesions_mod.STD, 1000)],
)
def test_fixed_mean_std_match_measurement(name: str, mean: tuple, std: tuple, n: int) -> None:
    x = get_dataset(name, "train", n_train=n).tensors()[0]
    assert dataset_info(name).mean == mean
    assert torch.allclose(x.mean(dim=(0, 2, 3)), torch.tensor(mean), atol=0.02)
    assert torch.allclose(x.std(dim=(0, 2, 3)), torch.tensor(std), atol=0.02)


def _inside_fraction(k: int, grid: int = 801, extent: float = 1.2) -> float:
    c = torch.linspace(-extent, extent, grid, dtype=torch.float64)
    v, u = torch.meshgrid(c, c, indexing="ij")
    inside = shapes_mod.shape_sdf(k, u, v) <= 0
    return inside.double().mean().item() * (2 * extent) ** 2


def _ngon_area(n: int, r: float) -> float:
    return n / 2 * r * r * math.sin(2 * math.pi / n)


@pytest.mark.parametrize(
    ("shape", "area"),
    [
        ("circle", math.pi * 0.9**2),
        ("square", 1.44**2),
        ("triangle", _ngon_area(3, 1.05)),
        ("cross", 2 * 1.9 * 0.56 - 0.56**2),
        ("ring", math.pi * (0.95**2 - 0.55**2)),
        ("ellipse", math.pi * 1.0 * 0.5),
        ("pentagon", _ngon_area(5, 0.95)),
        ("hexagon", _ngon_area(6, 0.92)),
    ],
)
def test_shape_sdf_areas_match_closed_forms(shape: str, area: float) -> None:
    k = shapes_mod.CLASS_NAMES.index(shape)
    assert _inside_fraction(k) == pytest.approx(area, rel=0.01)


def test_star_and_crescent_geometry() -> None:
    star = shapes_mod.CLASS_NAMES.index("star")
    crescent = shapes_mod.CLASS_NAMES.index("crescent")
    t = torch.tensor
    # star: tips at angles 2πj/5 radius 1, notches between them at radius 0.42
    for j in range(5):
        a = 2 * math.pi * j / 5
        assert shapes_mod.shape_sdf(star, t([0.95 * math.cos(a)]), t([0.95 * math.sin(a)])) < 0
        b = a + math.pi / 5
        assert shapes_mod.shape_sdf(star, t([0.6 * math.cos(b)]), t([0.6 * math.sin(b)])) > 0
    # crescent: the left rim is inside, the centre and right side are cut out
    assert shapes_mod.shape_sdf(crescent, t([-0.8]), t([0.0])) < 0
    assert shapes_mod.shape_sdf(crescent, t([0.0]), t([0.0])) > 0
    assert shapes_mod.shape_sdf(crescent, t([0.8]), t([0.0])) > 0


def test_take_subset_and_errors() -> None:
    ds = get_dataset("shapes", "test", n_test=12)
    t = ds.take(5)
    assert len(t) == 5 and t.info is ds.info
    assert torch.equal(t.tensors()[0], ds.tensors()[0][:5])
    assert len(ds.take(100)) == 12
    with pytest.raises(RlipError):
        ds.take(0)
    with pytest.raises(IndexError):
        ds[12]


def test_collate_and_loader() -> None:
    ds = get_dataset("shapes", "train", n_train=20)
    x, y, m = collate([ds[0], ds[1], ds[2]])
    assert x.shape == (3, 3, 32, 32) and y.shape == (3,) and m.shape == (3, 32, 32)
    nomask = RlipDataset(ds.info, ds.tensors()[0], ds.tensors()[1], None)
    assert collate([nomask[0], nomask[1]])[2] is None

    state = torch.get_rng_state()
    order = [b[1].tolist() for b in make_loader(ds, 8, shuffle=True, seed=3)]
    assert [b[1].tolist() for b in make_loader(ds, 8, shuffle=True, seed=3)] == order
    assert [b[1].tolist() for b in make_loader(ds, 8, shuffle=True, seed=4)] != order
    assert torch.equal(state, torch.get_rng_state())
    batches = list(make_loader(ds, 8, drop_last=True))
    assert len(batches) == 2 and batches[0][0].shape == (8, 3, 32, 32)
    # unshuffled: the batches are the dataset in order
    assert torch.equal(torch.cat([b[0] for b in make_loader(ds, 7)]), ds.tensors()[0])
    with pytest.raises(RlipError):
        make_loader(ds, 0)

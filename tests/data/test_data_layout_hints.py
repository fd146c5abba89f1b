"""What is wrong with an own CIFAR-10 / COCO folder: bytes-keyed and protocol-5 CIFAR pickles are
read, unknown keys are named, and a --root one level off gets the --root that would work."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from robustbench_lip.data import cifar as cifar_mod
from robustbench_lip.data import dataset_info, export_dataset, get_dataset
from robustbench_lip.errors import RlipError

NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def _msg(e: pytest.ExceptionInfo) -> str:
    msg = str(e.value)
    assert msg and "\n" not in msg
    return msg


def _write_bytes_keyed_cifar(root: Path, protocol: int, n: int = 3) -> dict[str, tuple[np.ndarray, list]]:
    """ROOT/cifar-10-batches-py as Python 3 writes it back after the CIFAR page's recipe
    `d = pickle.load(f, encoding="bytes")`: dicts with bytes keys (b"data", b"labels", ...)."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    written = {}
    for k, name in enumerate([*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]):
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, n)]
        entry = {
            b"batch_label": f"batch {k}".encode(),
            b"labels": labels,
            b"data": data,
            b"filenames": [f"img_{k}_{i}.png".encode() for i in range(n)],
        }
        with open(folder / name, "wb") as f:
            pickle.dump(entry, f, protocol=protocol)
        written[name] = (data, labels)
    meta = {b"num_cases_per_batch": n, b"label_names": [c.encode() for c in NAMES], b"num_vis": 3072}
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump(meta, f, protocol=protocol)
    return written


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_cifar_bytes_keys_and_any_pickle_protocol(tmp_path: Path, protocol: int) -> None:
    written = _write_bytes_keyed_cifar(tmp_path, protocol)
    ds = get_dataset("cifar10", "test", root=str(tmp_path))
    data, labels = written["test_batch"]
    assert torch.equal(ds.uint8_images(), torch.from_numpy(data).reshape(-1, 3, 32, 32))
    assert ds.tensors()[1].tolist() == labels and ds.info.class_names == NAMES
    train = get_dataset("cifar10", "train", root=str(tmp_path))
    expected = np.concatenate([written[f"data_batch_{i}"][0] for i in range(1, 6)])
    assert torch.equal(train.uint8_images(), torch.from_numpy(expected).reshape(-1, 3, 32, 32))


def test_cifar_str_keys_protocol_5(tmp_path: Path) -> None:
    """A Python 3 pickle with str keys and the default numpy protocol-5 reduction (_frombuffer)."""
    export_dataset("shapes", format="cifar", out=tmp_path / "src", n=4, split="test")
    folder = tmp_path / "dst" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    with open(tmp_path / "src" / "cifar-10-batches-py" / "test_batch", "rb") as f:
        entry = pickle.load(f, encoding="latin1")
    (folder / "test_batch").write_bytes(pickle.dumps(entry, protocol=5))
    shutil.copy(tmp_path / "src" / "cifar-10-batches-py" / "batches.meta", folder / "batches.meta")
    ds = get_dataset("cifar10", "test", root=str(tmp_path / "dst"))
    assert torch.equal(ds.uint8_images(), get_dataset("shapes", "test", n_test=4).uint8_images())


def test_cifar_reader_equals_torchvision(tmp_path: Path) -> None:
    export_dataset("shapes", format="cifar", out=tmp_path, n=7, seed=3)
    for train in (True, False):
        tv = cifar_mod._torchvision_class()(str(tmp_path), train=train, download=False)
        ds = get_dataset("cifar10", "train" if train else "test", root=str(tmp_path))
        assert np.array_equal(ds.uint8_images().permute(0, 2, 3, 1).numpy(), tv.data)
        assert ds.tensors()[1].tolist() == list(tv.targets) and list(ds.info.class_names) == tv.classes


def test_cifar_wrong_keys_are_named(tmp_path: Path) -> None:
    _write_bytes_keyed_cifar(tmp_path, 2)
    bad = {b"images": np.zeros((2, 3072), np.uint8), b"targets": [0, 1]}
    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(pickle.dumps(bad, protocol=2))
    with pytest.raises(RlipError) as e:
        get_dataset("cifar10", "test", root=str(tmp_path))
    msg = _msg(e)
    assert "'data' and 'labels'" in msg and "b'images'" in msg and "b'targets'" in msg and "test_batch" in msg


def test_cifar_root_one_level_off_names_the_working_root(tmp_path: Path) -> None:
    parent = tmp_path / "datasets" / "cifar"
    export_dataset("shapes", format="cifar", out=parent, n=5)
    with pytest.raises(RlipError) as e:  # too deep: the batches folder itself
        get_dataset("cifar10", "test", root=str(parent / "cifar-10-batches-py"))
    assert f"--root {parent}" in _msg(e)
    with pytest.raises(RlipError) as e:  # too shallow: the parent's parent
        get_dataset("cifar10", "test", root=str(tmp_path))
    assert f"--root {parent}" in _msg(e)
    renamed = tmp_path / "mycifar"
    (parent / "cifar-10-batches-py").rename(renamed)
    with pytest.raises(RlipError) as e:  # the batches in a folder with another name
        get_dataset("cifar10", "test", root=str(renamed))
    assert "cifar-10-batches-py" in _msg(e) and f"--root {tmp_path}" in str(e.value)


def test_coco_root_one_level_off_names_the_working_root(tmp_path: Path) -> None:
    root = tmp_path / "data" / "coco"
    export_dataset("shapes", format="coco", out=root, n=3)
    for wrong in (root / "annotations", root / "val2017", tmp_path):
        with pytest.raises(RlipError) as e:
            get_dataset("coco", "test", root=str(wrong), image_size=32)
        assert f"--root {root}" in _msg(e), wrong
    with pytest.raises(RlipError) as e:
        dataset_info("coco", root=str(root / "annotations"))
    assert f"--root {root}" in _msg(e)
    (root / "annotations" / "instances_val2017.json").rename(root / "annotations" / "captions_val2017.json")
    (root / "annotations" / "instances_train2017.json").unlink()
    with pytest.raises(RlipError) as e:
        get_dataset("coco", "test", root=str(root), image_size=32)
    assert "captions_val2017.json" in _msg(e) and "instances" in str(e.value)

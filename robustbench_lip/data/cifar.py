"""`cifar10`: the real CIFAR-10 python batches (the official files or any faithful re-encoding).

Expected layout: ROOT/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}. Nothing is
downloaded unless `download=True` is passed (then torchvision's `CIFAR10` downloads the archive and
checks its md5). A `--root` one level off (pointing at cifar-10-batches-py itself, or at a folder
above its parent) gets an error naming the --root that would work (data/layout_checks.py).

Reading: each file is unpickled once with a restricted unpickler that accepts only the globals a
CIFAR batch needs (numpy array reconstruction — protocol 2–5 —, `_codecs.encode`), so a crafted file
cannot run code and a truncated file is one clear error. The dict keys may be str or bytes: the
official files hold Python-2 byte strings, which `encoding="latin1"` (torchvision) reads as str, but
a batch re-pickled from Python 3 after the CIFAR page's `pickle.load(f, encoding="bytes")` recipe
holds b"data", b"labels"; both are accepted, and anything else is an error listing the keys found.
The decoding is torchvision's `CIFAR10` (tests compare the two): "data" uint8 (N, 3072) rows, channel
major, reshaped to (N,3,32,32); "labels" (or "fine_labels"); class names from batches.meta's
"label_names". No md5 check of the files themselves: it would reject `rlip data export` output.

`write_cifar_folder` writes the genuine format: protocol-2 pickles of dicts whose keys are Python-2
style byte strings (so `pickle.load(f, encoding="latin1")` — torchvision — sees str keys and
`encoding="bytes"` — the CIFAR web page's recipe — sees b"data", b"labels"), with "data" a uint8
numpy array (N, 3072) (channel-major rows: 1024 R, 1024 G, 1024 B) and "labels" a list of ints.
"""

from __future__ import annotations

import io
import logging
import os
import pickle
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from robustbench_lip.config import DatasetInfo
from robustbench_lip.data.base import RlipDataset, check_int, check_options
from robustbench_lip.errors import RlipError

logger = logging.getLogger(__name__)

BASE_FOLDER = "cifar-10-batches-py"
TRAIN_FILES: tuple[str, ...] = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILES: tuple[str, ...] = ("test_batch",)
META_FILE = "batches.meta"
CLASS_NAMES: tuple[str, ...] = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
MEAN = (0.4914, 0.4822, 0.4465)  # the usual CIFAR-10 training-set statistics
STD = (0.2470, 0.2435, 0.2616)
HOW_TO_GET = (
    "get it with download=True (rlip: --download) on a machine with a network, or write a test "
    "fixture with `rlip data export shapes --format cifar --out DIR`"
)

_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),  # protocol-5 pickles of arrays
    ("numpy._core.numeric", "_frombuffer"),
    ("_codecs", "encode"),
    ("copy_reg", "_reconstructor"),
    ("copyreg", "_reconstructor"),
    ("__builtin__", "object"),
    ("builtins", "object"),
}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")
        return super().find_class(module, name)


def _check_pickle(path: Path) -> Any:
    """Unpickle `path` with only CIFAR's globals allowed; any failure is an RlipError."""
    try:
        with open(path, "rb") as f:
            return _RestrictedUnpickler(f, encoding="latin1").load()
    except FileNotFoundError:
        raise RlipError(f"CIFAR-10 file missing: {path}; {HOW_TO_GET}") from None
    except Exception as e:  # truncated / not a pickle / forbidden global
        raise RlipError(f"CIFAR-10 file {path} is corrupt ({type(e).__name__}: {e}); {HOW_TO_GET}") from None


def _torchvision_class() -> type:
    from torchvision.datasets import CIFAR10
    from torchvision.datasets.utils import check_integrity

    class _RlipCIFAR10(CIFAR10):  # type: ignore[misc, valid-type]
        """torchvision's CIFAR10 with existence-only file checks, limited to the requested split."""

        train_list: ClassVar[list[list[str | None]]] = [[name, None] for name in TRAIN_FILES]
        test_list: ClassVar[list[list[str | None]]] = [[name, None] for name in TEST_FILES]
        meta: ClassVar[dict[str, str | None]] = {"filename": META_FILE, "key": "label_names", "md5": None}

        def _check_integrity(self) -> bool:
            files = (TRAIN_FILES if self.train else TEST_FILES) + (META_FILE,)
            return all(check_integrity(os.path.join(self.root, self.base_folder, f), None) for f in files)

    return _RlipCIFAR10


def _folder(root: Any) -> Path:
    if root is None or str(root) == "":
        raise RlipError(f"cifar10 needs a root folder (--root DIR) holding {BASE_FOLDER}/; {HOW_TO_GET}")
    return Path(root).expanduser() / BASE_FOLDER


def availability(root: Any) -> str:
    """Text for `rlip data list`: whether the files are present under `root`."""
    if root is None:
        return "needs --root"
    folder = Path(root).expanduser() / BASE_FOLDER
    have = [f for f in (*TRAIN_FILES, *TEST_FILES, META_FILE) if (folder / f).is_file()]
    if len(have) == len(TRAIN_FILES) + len(TEST_FILES) + 1:
        return "yes (found)"
    return "no (incomplete)" if have else "no (not found)"


def _options(options: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    check_options("cifar10", options, ("n_train", "n_test", "download"))
    resolved: dict[str, Any] = {}
    for key in ("n_train", "n_test"):
        if options.get(key) is not None:
            resolved[key] = check_int(key, options[key], 1)
    download = options.get("download", False)
    if not isinstance(download, bool):
        raise RlipError(f"option download must be true or false, got {download!r}")
    return resolved, download


def info(**options: Any) -> DatasetInfo:
    """DatasetInfo of cifar10 (fixed; no file is read)."""
    resolved, _ = _options(options)
    return _info(resolved, CLASS_NAMES)


def _info(resolved: dict[str, Any], class_names: tuple[str, ...]) -> DatasetInfo:
    return DatasetInfo(
        name="cifar10",
        in_channels=3,
        image_size=(32, 32),
        num_classes=len(class_names),
        class_names=class_names,
        has_masks=False,
        mean=MEAN,
        std=STD,
        options=dict(resolved),
    )


def _str_keys(d: Any, path: Path) -> dict[str, Any]:
    """The dict of a CIFAR file with bytes keys decoded (latin1); not a dict → RlipError."""
    if not isinstance(d, dict):
        raise RlipError(f"CIFAR-10 file {path} is corrupt (it holds a {type(d).__name__}, not a dict)")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in d.items()}


def _keys_error(path: Path, d: Any, expected: str) -> RlipError:
    found = ", ".join(repr(k) for k in list(d)[:8]) or "none"
    return RlipError(
        f"CIFAR-10 file {path} is corrupt: expected the keys {expected} (str or bytes), found {found}"
    )


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One batch file → (images uint8 (N,3,32,32), labels int64 (N,)); anything malformed → RlipError."""
    raw = _check_pickle(path)
    d = _str_keys(raw, path)
    label_key = "labels" if "labels" in d else "fine_labels"  # as torchvision
    if "data" not in d or label_key not in d:
        raise _keys_error(path, raw, "'data' and 'labels'")
    data = d["data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        what = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise RlipError(
            f"CIFAR-10 file {path} is corrupt: 'data' must be a uint8 array (N, 3072) (rows: 1024 R, "
            f"1024 G, 1024 B values), got {what}"
        )
    try:
        labels = np.asarray(d[label_key])
        ok = labels.ndim == 1 and labels.dtype.kind in "iu"
    except Exception:  # ragged lists, odd objects
        ok = False
    if not ok or labels.shape[0] != data.shape[0]:
        raise RlipError(
            f"CIFAR-10 file {path} is corrupt: '{label_key}' must be {data.shape[0]} integers (one per row "
            "of 'data')"
        )
    return data.reshape(-1, 3, 32, 32), labels.astype(np.int64)


def read_class_names(path: Path) -> tuple[str, ...]:
    """batches.meta → its "label_names" (str or bytes) as a tuple of str."""
    raw = _check_pickle(path)
    names = _str_keys(raw, path).get("label_names")
    ok = isinstance(names, (list, tuple)) and names and all(isinstance(n, (str, bytes)) for n in names)
    if not ok:
        raise _keys_error(path, raw, "'label_names' (a list of names)")
    return tuple(n.decode("latin1") if isinstance(n, bytes) else str(n) for n in names)


def _missing_error(root: Any, folder: Path, missing: list[str]) -> RlipError:
    if folder.is_dir():
        return RlipError(f"CIFAR-10 folder {folder} incomplete (missing {', '.join(missing)}); {HOW_TO_GET}")
    from robustbench_lip.data.layout_checks import cifar_root_hint

    hint = cifar_root_hint(Path(root).expanduser())
    return RlipError(f"CIFAR-10 folder {folder} not found; {hint or HOW_TO_GET}")


def load(root: Any, split: str = "train", **options: Any) -> RlipDataset:
    """CIFAR-10 `split` from ROOT/cifar-10-batches-py (no masks).

    Options: n_train / n_test (keep the first n images), download (bool, default False)."""
    resolved, download = _options(options)
    folder = _folder(root)
    train = split == "train"
    batch_files = TRAIN_FILES if train else TEST_FILES
    missing = [f for f in (*batch_files, META_FILE) if not (folder / f).is_file()]
    if missing and download:  # torchvision downloads the official archive and checks its md5
        try:
            _torchvision_class()(str(folder.parent), train=train, download=True)
        except Exception as e:
            raise RlipError(f"could not download CIFAR-10 into {folder}: {e}") from None
        missing = [f for f in (*batch_files, META_FILE) if not (folder / f).is_file()]
    if missing:
        raise _missing_error(root, folder, missing)
    parts = [read_batch(folder / f) for f in batch_files]
    classes = read_class_names(folder / META_FILE)
    images = torch.from_numpy(np.concatenate([p[0] for p in parts]))
    labels = torch.from_numpy(np.concatenate([p[1] for p in parts]))
    if labels.numel() and (labels.min() < 0 or labels.max() >= len(classes)):
        raise RlipError(
            f"CIFAR-10 folder {folder} is corrupt (labels outside 0..{len(classes) - 1}, the classes of "
            f"{META_FILE})"
        )
    n = resolved.get("n_train" if train else "n_test")
    if n is not None:
        images, labels = images[:n], labels[:n]
    logger.debug("loaded CIFAR-10 %s from %s: %d images", split, folder, len(labels))
    return RlipDataset(_info(resolved, classes), images.contiguous(), labels, None)


# --- writing the genuine format -------------------------------------------------------------------


class _Py2Str(str):
    """A str pickled as a Python-2 byte string (SHORT_BINSTRING / BINSTRING), like the original files."""


def _save_py2str(pickler: Any, obj: _Py2Str) -> None:
    data = obj.encode("latin1")
    if len(data) < 256:
        pickler.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
    else:
        pickler.write(pickle.BINSTRING + len(data).to_bytes(4, "little") + data)
    pickler.memoize(obj)


class _Py2Pickler(pickle._Pickler):  # the pure-Python pickler, whose dispatch table can be extended
    dispatch: ClassVar[dict[type, Any]] = dict(pickle._Pickler.dispatch)
    dispatch[_Py2Str] = _save_py2str


def cifar_pickle(obj: Any) -> bytes:
    """Protocol-2 pickle of `obj` with _Py2Str values written as Python-2 byte strings."""
    buf = io.BytesIO()
    _Py2Pickler(buf, protocol=2).dump(obj)
    return buf.getvalue()


def batch_bytes(images: torch.Tensor, labels: torch.Tensor, batch_label: str, start: int) -> bytes:
    """One CIFAR batch file: images uint8 (N,3,32,32), labels (N,) → pickle bytes."""
    data = images.reshape(images.shape[0], 3 * 32 * 32).numpy().astype(np.uint8, copy=True)
    entry = {
        _Py2Str("batch_label"): _Py2Str(batch_label),
        _Py2Str("labels"): [int(v) for v in labels.tolist()],
        _Py2Str("data"): data,
        _Py2Str("filenames"): [_Py2Str(f"rlip_{start + i:06d}.png") for i in range(images.shape[0])],
    }
    return cifar_pickle(entry)


def meta_bytes(class_names: tuple[str, ...], per_batch: int) -> bytes:
    return cifar_pickle(
        {
            _Py2Str("num_cases_per_batch"): per_batch,
            _Py2Str("label_names"): [_Py2Str(c) for c in class_names],
            _Py2Str("num_vis"): 3072,
        }
    )


def write_cifar_folder(
    folder: Path,
    splits: dict[str, tuple[torch.Tensor, torch.Tensor]],
    class_names: tuple[str, ...],
) -> None:
    """Write a cifar-10-batches-py folder (which must not exist yet) from uint8 (N,3,32,32) images and
    labels per split ("train" → data_batch_1..5, split into 5 near-equal parts; "test" → test_batch)."""
    folder.mkdir(parents=False, exist_ok=False)
    per_batch = 0
    for split, (images, labels) in splits.items():
        if images.dtype != torch.uint8 or tuple(images.shape[1:]) != (3, 32, 32):
            raise RlipError(f"CIFAR format holds uint8 3×32×32 images, got {tuple(images.shape[1:])}")
        if split == "train":
            bounds = np.linspace(0, images.shape[0], len(TRAIN_FILES) + 1).round().astype(int)
            for k, name in enumerate(TRAIN_FILES):
                a, b = int(bounds[k]), int(bounds[k + 1])
                label = f"training batch {k + 1} of {len(TRAIN_FILES)}"
                (folder / name).write_bytes(batch_bytes(images[a:b], labels[a:b], label, a))
                per_batch = max(per_batch, b - a)
        else:
            (folder / TEST_FILES[0]).write_bytes(batch_bytes(images, labels, "testing batch 1 of 1", 0))
            per_batch = max(per_batch, images.shape[0])
    (folder / META_FILE).write_bytes(meta_bytes(class_names, per_batch))

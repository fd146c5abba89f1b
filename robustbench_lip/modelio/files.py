"""Model file constants and safe raw readers: torch files (weights_only), safetensors, plain bytes."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from robustbench_lip.errors import RlipError

FORMAT = "rlip-model"
FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
TORCHVISION_PREFIX = "torchvision:"
DEFAULT_FOREIGN_INPUT = (3, 224, 224)

_REFUSE_HINT = (
    "re-save only the weights (torch.save(model.state_dict(), F) and load with --arch NAME), "
    "or save with rlip's save_model / `rlip models export`"
)


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _torch_load(path: Path) -> Any:
    """torch.load with weights_only=True; code-bearing pickles and corrupt files → RlipError."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "weights only load failed" in str(e).lower():
            raise RlipError(
                f"{path} holds pickled Python objects (e.g. a whole nn.Module), which rlip refuses to "
                f"load because unpickling can run code from the file; {_REFUSE_HINT}"
            ) from None
        raise RlipError(f"{path} is not a valid PyTorch file: {_first_line(e)}") from None
    except FileNotFoundError:
        raise RlipError(f"file not found: {path}") from None
    except (RuntimeError, EOFError, OSError, KeyError, ValueError, zipfile.BadZipFile) as e:
        raise RlipError(f"{path} is truncated or not a PyTorch file ({_first_line(e)})") from None


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise RlipError(f"file not found: {path}") from None
    except OSError as e:
        raise RlipError(f"cannot read {path}: {e.strerror or e}") from None


def _load_safetensors(data: bytes, source: str) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load as st_load

    try:
        return st_load(data)
    except (SafetensorError, ValueError, RuntimeError) as e:
        raise RlipError(f"{source} is truncated or not a safetensors file ({_first_line(e)})") from None

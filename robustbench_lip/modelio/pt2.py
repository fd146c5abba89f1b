"""`.pt2` archives (torch.export.save): screening for code-bearing payloads, then weights-only loading.

torch.export.load may unpickle opaque objects, load AOTInductor shared libraries or fall back to
unsafe `torch.load`, so the archive is screened first (no AOTInductor/ExecuTorch/MTIA payloads, no
custom/opaque objects) and loaded with TORCH_FORCE_WEIGHTS_ONLY_LOAD=1, which turns every
torch.load into weights_only.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import re
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from robustbench_lip.errors import RlipError
from robustbench_lip.modelio.files import _first_line
from robustbench_lip.modelio.foreign import ForeignModel, infer_config
from robustbench_lip.modelio.hints import with_hint


def _screen_pt2(path: Path) -> None:
    """Refuse archives carrying payloads that torch.export.load would execute or unpickle unsafely."""
    from torch.export.pt2_archive import constants as pc

    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    except (zipfile.BadZipFile, OSError) as e:
        raise RlipError(f"{path} is truncated or not a torch.export archive ({_first_line(e)})") from None
    for name in names:
        inner = name.split("/", 1)[1] if "/" in name else name
        base = name.rsplit("/", 1)[-1]
        if inner.startswith((pc.AOTINDUCTOR_DIR, pc.EXECUTORCH_DIR, pc.MTIA_DIR)) or base.endswith(
            (".so", ".dll", ".dylib")
        ):
            raise RlipError(
                f"{path} contains compiled code ({name}), which rlip refuses to load; "
                "export the model with torch.export.save only (no AOTInductor package)"
            )
        if base.startswith((pc.CUSTOM_OBJ_FILENAME_PREFIX, pc.OPAQUE_OBJ_FILENAME_PREFIX)):
            raise RlipError(
                f"{path} contains pickled Python objects ({name}), which rlip refuses to load because "
                "unpickling can run code from the file; export a model whose constants are tensors"
            )


@contextlib.contextmanager
def _force_weights_only() -> Iterator[None]:
    """Make every torch.load in this block weights_only (torch honours TORCH_FORCE_WEIGHTS_ONLY_LOAD)."""
    keys = ("TORCH_FORCE_WEIGHTS_ONLY_LOAD", "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD")
    old = {k: os.environ.get(k) for k in keys}
    os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = "1"
    os.environ.pop("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", None)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


_UNRESOLVED = re.compile(r"resolve torch\.ops\.([\w.]+?)(?:\.default)? to an operator")


class _Capture(logging.Handler):
    """Keeps the messages torch.export.load logs (it logs a deserialisation error, then raises a
    generic one), so the error can name what failed, and nothing reaches the terminal."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.texts: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            text += " " + str(record.exc_info[1])
        self.texts.append(text)


@contextlib.contextmanager
def _captured_export_log() -> Iterator[_Capture]:
    logger = logging.getLogger("torch.export")
    cap, old, handlers = _Capture(), logger.propagate, logger.handlers
    logger.handlers = [cap]
    logger.propagate = False
    try:
        yield cap
    finally:
        logger.handlers = handlers
        logger.propagate = old


def _unknown_op(path: Path, texts: list[str]) -> RlipError | None:
    """The error naming a custom op that is not registered in this process (None: another cause)."""
    ops = sorted({m.group(1) for t in texts for m in _UNRESOLVED.finditer(t)})
    if not ops:
        return None
    return RlipError(
        f"{path}: no bound rule for {', '.join(ops)} (a custom op, not registered in this process, so "
        "the program cannot be loaded); import the op's library and register a bound rule "
        "(lipschitz.bounds.register_rule), then certify from Python"
    )


def _pt2_input(ep: Any, source: str) -> tuple[tuple[int, ...], int | None]:
    """(input shape without batch, fixed batch size or None when the batch dim is symbolic)."""
    user_inputs = list(ep.graph_signature.user_inputs)
    if len(user_inputs) != 1:
        raise RlipError(
            f"{source}: the exported program takes {len(user_inputs)} inputs; rlip needs one image batch"
        )
    node = next(n for n in ep.graph.nodes if n.op == "placeholder" and n.name == user_inputs[0])
    val = node.meta.get("val")
    shape = tuple(val.shape) if val is not None else None
    if shape is None and ep.example_inputs:
        shape = tuple(ep.example_inputs[0][0].shape)
    if shape is None or len(shape) != 4:
        raise RlipError(f"{source}: the exported program's input is not an image batch (N, C, H, W): {shape}")
    dims = []
    for s in shape[1:]:
        if not isinstance(s, int):
            if ep.example_inputs:
                s = ep.example_inputs[0][0].shape[len(dims) + 1]
            else:
                raise RlipError(
                    f"{source}: dynamic image size without example inputs; "
                    "pass --input-shape C,H,W (input_size)"
                )
        dims.append(int(s))
    batch = shape[0] if isinstance(shape[0], int) else None
    return tuple(dims), batch


def _load_pt2(path: Path, input_size: Sequence[int] | None) -> nn.Module:
    _screen_pt2(path)
    with _captured_export_log() as cap:
        ep = _load_program(path, cap)
    size, batch = _pt2_input(ep, str(path))
    if input_size is not None:
        size = tuple(int(v) for v in input_size)
    net = ep.module()
    cfg = infer_config(net, "pt2", size, batch=batch)
    return ForeignModel(net, cfg, batch=batch)


def _load_program(path: Path, cap: _Capture) -> Any:
    """torch.export.load under weights-only loading; one-line RlipError for each kind of failure."""
    try:
        with _force_weights_only():
            return torch.export.load(path)
    except pickle.UnpicklingError as e:
        if "weights only load failed" in str(e).lower():
            raise RlipError(
                f"{path} holds pickled Python objects, which rlip refuses to load because unpickling "
                f"can run code from the file; export a model whose weights are plain tensors"
            ) from None
        raise RlipError(f"{path} is not a valid torch.export archive: {_first_line(e)}") from None
    except Exception as e:  # torch.export.load raises many kinds on damaged archives
        unknown = _unknown_op(path, [*cap.texts, str(e)])
        if unknown is not None:
            raise unknown from None
        why = f"({_first_line(e)})"
        if with_hint(why) != why:  # a known failure of a model exported with live parametrizations
            raise RlipError(f"torch.export.load cannot read {path} {with_hint(why)}") from None
        raise RlipError(f"{path} is truncated or not a torch.export archive {why}") from None

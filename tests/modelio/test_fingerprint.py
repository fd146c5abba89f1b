"""weights_sha256 is a fingerprint of the tensors alone: independent of the file layout (safetensors
metadata, insertion order), changed by any change of a tensor's values, dtype, shape or name."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load, save

from robustbench_lip.errors import RlipError
from robustbench_lip.modelio import load_model, read_model_meta, save_model
from robustbench_lip.modelio.files import CONFIG_FILE, WEIGHTS_FILE
from robustbench_lip.modelio.fingerprint import weights_fingerprint
from robustbench_lip.models import create_model


def _state() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        "w": torch.randn(3, 4, generator=g),
        "b": torch.randn(4, generator=g).double(),
        "n": torch.tensor(7),
        "mask": torch.tensor([True, False, True]),
    }


def _reference(state: dict[str, torch.Tensor]) -> str:
    """The documented rule written out with numpy (independent of the implementation)."""
    h = hashlib.sha256()
    for name in sorted(state):
        a = state[name].numpy()
        data = np.ascontiguousarray(a).tobytes()
        h.update(f"{name}\0{str(state[name].dtype)[6:]}\0{tuple(a.shape)}\0{len(data)}\0".encode())
        h.update(data)
    return h.hexdigest()


def test_same_tensors_any_layout_same_fingerprint() -> None:
    s = _state()
    files = [
        save(s, metadata={"format": "pt", "rlip_arch": "x"}),
        save(dict(reversed(list(s.items()))), metadata={"rlip_arch": "x", "format": "pt", "extra": "1"}),
        save(s),
    ]
    assert len({hashlib.sha256(f).hexdigest() for f in files}) > 1  # the files differ ...
    fps = {weights_fingerprint(load(f)) for f in files}
    assert fps == {weights_fingerprint(s)} == {_reference(s)}  # ... the fingerprint does not


@pytest.mark.parametrize(
    "change",
    [
        lambda s: s["w"].view(-1)[5].add_(1e-7),  # one value, by one float32 ulp or so
        lambda s: s.__setitem__("b", s["b"].float()),  # dtype
        lambda s: s.__setitem__("w", s["w"].reshape(4, 3)),  # shape, same bytes
        lambda s: s.__setitem__("v", s.pop("w")),  # name
        lambda s: s.__setitem__("w", s["w"].view(torch.int32)),  # same bytes, other dtype
    ],
)
def test_changed_tensor_changes_fingerprint(change) -> None:
    s = _state()
    before = weights_fingerprint(s)
    change(s)
    assert weights_fingerprint(s) != before


def test_model_dir_fingerprint_ignores_file_layout(tmp_path: Path) -> None:
    model = create_model("mresnet18_tiny")
    save_model(model, tmp_path / "run")
    meta = read_model_meta(tmp_path / "run")
    weights = tmp_path / "run" / WEIGHTS_FILE
    state = load(weights.read_bytes())
    # the same tensors, written in another order with other metadata
    relaid = save(dict(reversed(list(state.items()))), metadata={"written_by": "someone else"})
    assert relaid != weights.read_bytes()
    assert meta["weights_sha256"] == weights_fingerprint(load(relaid))
    weights.write_bytes(relaid)
    loaded = load_model(tmp_path / "run")  # the check is on the tensors: still the same model
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v)
    # a changed tensor is refused
    state["stem.0.weight"] = state["stem.0.weight"] + 1
    weights.write_bytes(save(state))
    with pytest.raises(RlipError, match="sha256"):
        load_model(tmp_path / "run")


def test_old_model_dirs_with_the_file_sha256_still_load(tmp_path: Path) -> None:
    model = create_model("mresnet18_tiny")
    save_model(model, tmp_path / "run")
    cfg = tmp_path / "run" / CONFIG_FILE
    meta = json.loads(cfg.read_text())
    meta["weights_sha256"] = hashlib.sha256((tmp_path / "run" / WEIGHTS_FILE).read_bytes()).hexdigest()
    del meta["weights_sha256_of"]
    cfg.write_text(json.dumps(meta))
    load_model(tmp_path / "run")

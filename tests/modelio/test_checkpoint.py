"""Model files: save/load round trips, foreign formats, and refusal of anything carrying code."""

from __future__ import annotations

import builtins
import io
import json
import re
import zipfile
from pathlib import Path

import pytest
import torch
from torch import nn

import robustbench_lip
from robustbench_lip.config import DatasetInfo, ModelConfig
from robustbench_lip.errors import RlipError
from robustbench_lip.modelio import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    export_pt2,
    load_model,
    read_model_meta,
    save_model,
    save_pt,
)
from robustbench_lip.modelio.fingerprint import weights_fingerprint
from robustbench_lip.models import can_segment, create_model, list_models, predict_mask

TINY = list_models("*tiny*")


def _x(cfg: ModelConfig, n: int = 3, seed: int = 1) -> torch.Tensor:
    return torch.rand((n, *cfg.input_size), generator=torch.Generator().manual_seed(seed))


def _perturbed(name: str, **kw: object) -> nn.Module:
    """A model whose BatchNorm statistics differ from their defaults (so they must be saved too)."""
    model = create_model(name, **kw)
    g = torch.Generator().manual_seed(2)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
            m.num_batches_tracked.fill_(7)
    return model.eval()


class _Evil:
    """Unpickling this creates a marker file: proof that code from the file ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (builtins.open, (self.marker, "w"))


def _evil_bytes(marker: Path) -> bytes:
    buf = io.BytesIO()
    torch.save({"state_dict": {}, "payload": _Evil(marker)}, buf)
    return buf.getvalue()


@pytest.mark.parametrize("name", TINY)
def test_save_load_bit_identical(name: str, tmp_path: Path) -> None:
    model = _perturbed(name)
    x = _x(model.config)
    out = save_model(model, tmp_path / "run")
    assert out == tmp_path / "run"
    loaded = load_model(tmp_path / "run")
    assert not loaded.training and loaded.config == model.config
    assert torch.equal(loaded(x), model(x))
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k
    meta = json.loads((tmp_path / "run" / CONFIG_FILE).read_text())
    assert meta["weights_sha256"] == weights_fingerprint(model.state_dict())  # tensors only
    if can_segment(model):
        assert torch.equal(predict_mask(loaded, x), predict_mask(model, x))


def test_meta_keys_dataset_and_training(tmp_path: Path) -> None:
    info = DatasetInfo(
        "lesions", 1, (16, 16), 2, ("clean", "lesion"), True, 2, ("bg", "lesion"), (0.5,), (0.5,)
    )
    model = create_model("unet_i2i_tiny", mean=(0.5,), std=(0.5,))
    save_model(model, tmp_path, dataset=info, training={"lam": 0.1, "epochs": 2, "loss": float("nan")})
    meta = read_model_meta(tmp_path)
    assert set(meta) >= {
        "format",
        "format_version",
        "model",
        "dataset",
        "training",
        "rlip",
        "torch",
        "weights_sha256",
    }
    assert meta["format"] == "rlip-model" and meta["format_version"] == 1
    assert ModelConfig.from_dict(meta["model"]) == model.config
    assert DatasetInfo.from_dict(meta["dataset"]) == info
    assert meta["training"] == {"lam": 0.1, "epochs": 2, "loss": None}
    assert meta["rlip"] == robustbench_lip.__version__ and meta["torch"] == torch.__version__
    assert read_model_meta(tmp_path / CONFIG_FILE) == meta == read_model_meta(tmp_path / WEIGHTS_FILE)
    assert not list(tmp_path.glob(".*tmp"))  # no temporary files left behind


def test_pt_file_and_bare_state_dicts(tmp_path: Path) -> None:
    model = _perturbed("mresnet18_tiny", num_classes=5, mean=(0.4, 0.5, 0.6), std=(0.2, 0.2, 0.3))
    x = _x(model.config)
    save_pt(model, tmp_path / "m.pt")
    assert torch.equal(load_model(tmp_path / "m.pt")(x), model(x))
    assert read_model_meta(tmp_path / "m.pt")["model"] == model.config.to_dict()
    # bare state_dict (+ arch): classes, channels and normalisation are read from the weights
    torch.save(model.state_dict(), tmp_path / "sd.pth")
    bare = load_model(tmp_path / "sd.pth", arch="mresnet18_tiny")
    assert bare.config.num_classes == 5 and bare.config.mean == pytest.approx(model.config.mean)
    assert torch.equal(bare(x), model(x))
    # explicit normalisation replaces the file's
    renorm = load_model(tmp_path / "sd.pth", arch="mresnet18_tiny", mean=(0.5,) * 3, std=(0.25,) * 3)
    assert renorm.config.mean == (0.5,) * 3 and renorm.config.std == (0.25,) * 3
    with torch.no_grad():
        model.input_mean.fill_(0.5)
        model.input_std.fill_(0.25)
    assert torch.equal(renorm(x), model(x))
    torch.save({"state_dict": model.state_dict()}, tmp_path / "wrapped.pt")
    assert torch.equal(load_model(tmp_path / "wrapped.pt", arch="mresnet18_tiny")(x), model(x))
    from safetensors.torch import save_file

    save_file(model.state_dict(), str(tmp_path / "w.safetensors"))
    assert torch.equal(load_model(tmp_path / "w.safetensors", arch="mresnet18_tiny")(x), model(x))
    with pytest.raises(RlipError, match="arch"):
        load_model(tmp_path / "sd.pth")
    with pytest.raises(RlipError, match="unknown model"):
        load_model(tmp_path / "sd.pth", arch="resnet9000")


def test_input_size_override(tmp_path: Path) -> None:
    save_model(create_model("unet_tiny"), tmp_path)
    loaded = load_model(tmp_path, input_size=(3, 32, 32))
    assert loaded.config.input_size == (3, 32, 32)
    assert loaded(torch.rand(1, 3, 32, 32)).shape == (1, 11, 32, 32)
    with pytest.raises(RlipError, match="input_size"):
        load_model(tmp_path, input_size=(1, 32, 32))


def test_torchvision_resnet18_round_trip_offline(tmp_path: Path) -> None:
    import torchvision

    net = torchvision.models.resnet18(weights=None, num_classes=7).eval()
    torch.save(net.state_dict(), tmp_path / "resnet18.pth")
    model = load_model(tmp_path / "resnet18.pth", arch="torchvision:resnet18", input_size=(3, 32, 32))
    cfg = model.config
    assert (cfg.arch, cfg.task, cfg.num_classes, cfg.input_size) == (
        "torchvision:resnet18",
        "classification",
        7,
        (3, 32, 32),
    )
    assert not can_segment(model) and not cfg.reflection_defined
    x = torch.rand(2, 3, 32, 32)
    assert torch.equal(model(x), net(x))
    # and through a model directory: the torchvision builder is rebuilt from the config
    save_model(model, tmp_path / "dir")
    again = load_model(tmp_path / "dir")
    assert again.config == cfg and torch.equal(again(x), net(x))
    torch.save({k: v for k, v in net.state_dict().items() if k != "fc.bias"}, tmp_path / "cut.pth")
    with pytest.raises(RlipError, match=r"does not fit torchvision:resnet18: missing fc\.bias"):
        load_model(tmp_path / "cut.pth", arch="torchvision:resnet18", input_size=(3, 32, 32))
    with pytest.raises(RlipError, match="unknown torchvision model"):
        load_model(tmp_path / "resnet18.pth", arch="torchvision:resnet_nope")


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[nn.Module, Path]]:
    """Each tiny model and its .pt2 export (exports take seconds: done once per module)."""
    root = tmp_path_factory.mktemp("pt2")
    out = {}
    for name in TINY:
        model = _perturbed(name)
        out[name] = (model, export_pt2(model, root / f"{name}.pt2"))
    return out


@pytest.mark.parametrize("name", TINY)
def test_pt2_export_round_trip(
    name: str, exported: dict[str, tuple[nn.Module, Path]], tmp_path: Path
) -> None:
    model, path = exported[name]
    loaded = load_model(path)
    cfg, ref = loaded.config, model.config
    assert cfg.arch == "pt2" and cfg.task == ref.task and cfg.input_size == ref.input_size
    assert cfg.reflection_defined == ref.reflection_defined
    expected_k = ref.num_classes if ref.task != "image2image" else ref.in_channels
    assert cfg.num_classes == expected_k
    x = _x(ref, n=3)  # exported with batch 2; the batch dimension is symbolic
    torch.testing.assert_close(loaded(x), model(x), atol=1e-5, rtol=1e-5)
    with pytest.raises(RlipError, match="pt2"):
        save_model(loaded, tmp_path / "dir")


def test_pt2_static_batch_is_chunked(tmp_path: Path) -> None:
    model = _perturbed("unet_i2i_tiny")
    export_pt2(model, tmp_path / "s.pt2", batch_size=2, dynamic_batch=False)
    loaded = load_model(tmp_path / "s.pt2")
    x = _x(model.config, n=4)
    torch.testing.assert_close(loaded(x), model(x), atol=1e-5, rtol=1e-5)
    x3 = _x(model.config, n=3)  # not a multiple of the fixed batch: the last chunk is padded
    torch.testing.assert_close(loaded(x3), model(x3), atol=1e-5, rtol=1e-5)
    # the graph is differentiable twice (training penalties / certification need it)
    xg = _x(model.config, n=2).requires_grad_(True)
    y = loaded(xg)
    v = torch.zeros_like(y, requires_grad=True)
    (g,) = torch.autograd.grad(y, xg, v, create_graph=True)
    (ju,) = torch.autograd.grad(g, v, torch.ones_like(xg))
    assert torch.isfinite(ju).all()


def test_code_bearing_pickle_is_refused_and_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "MARKER"
    data = _evil_bytes(marker)
    # the payload is real: a plain unpickler runs it
    proof = tmp_path / "PROOF"
    import pickle

    with zipfile.ZipFile(io.BytesIO(_evil_bytes(proof))) as z:
        pkl = next(n for n in z.namelist() if n.endswith("data.pkl"))
        pickle.loads(z.read(pkl))
    assert proof.exists()
    for suffix in (".pt", ".pth", ".bin"):
        path = tmp_path / f"evil{suffix}"
        path.write_bytes(data)
        with pytest.raises(RlipError, match=r"refuses.*code.*state_dict") as e:
            load_model(path, arch="mresnet18_tiny")
        assert "\n" not in str(e.value)
        with pytest.raises(RlipError, match="refuses"):
            read_model_meta(path)
    assert not marker.exists()


def test_pickled_module_is_refused(tmp_path: Path) -> None:
    torch.save(create_model("unet_tiny"), tmp_path / "whole.pt")
    with pytest.raises(RlipError, match=r"nn\.Module.*refuses"):
        load_model(tmp_path / "whole.pt")


def _rewrite_zip(src: Path, dst: Path, edit: dict[str, bytes], add: dict[str, bytes] | None = None) -> None:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, edit.get(info.filename, zin.read(info.filename)))
        for name, data in (add or {}).items():
            zout.writestr(name, data)


def test_pt2_with_pickled_payload_is_refused(
    exported: dict[str, tuple[nn.Module, Path]], tmp_path: Path
) -> None:
    marker = tmp_path / "MARKER"
    ok = exported["unet_i2i_tiny"][1]
    with zipfile.ZipFile(ok) as z:
        names = z.namelist()
        cfg_name = next(n for n in names if n.endswith("data/weights/model_weights_config.json"))
        config = json.loads(z.read(cfg_name))
    key = next(iter(config["config"]))
    config["config"][key]["use_pickle"] = True
    weight = cfg_name.rsplit("/", 1)[0] + "/" + config["config"][key]["path_name"]
    evil = {cfg_name: json.dumps(config).encode(), weight: _evil_bytes(marker)}
    _rewrite_zip(ok, tmp_path / "evil.pt2", evil)
    with pytest.raises(RlipError, match="refuses"):
        load_model(tmp_path / "evil.pt2")
    root = names[0].split("/", 1)[0]
    _rewrite_zip(ok, tmp_path / "opaque.pt2", {}, {f"{root}/data/constants/opaque_obj_0": b"x"})
    with pytest.raises(RlipError, match="pickled Python objects"):
        load_model(tmp_path / "opaque.pt2")
    _rewrite_zip(ok, tmp_path / "aoti.pt2", {}, {f"{root}/data/aotinductor/model/m.so": b"x"})
    with pytest.raises(RlipError, match="compiled code"):
        load_model(tmp_path / "aoti.pt2")
    (tmp_path / "fake.pt2").write_bytes(_evil_bytes(marker))  # a torch.save pickle named .pt2
    with pytest.raises(RlipError):
        load_model(tmp_path / "fake.pt2")
    assert not marker.exists()


def test_sha256_truncation_and_shape_errors(tmp_path: Path) -> None:
    model = create_model("mresnet18_tiny")
    save_model(model, tmp_path / "run")
    weights = tmp_path / "run" / WEIGHTS_FILE
    good = weights.read_bytes()
    weights.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
    with pytest.raises(RlipError, match="sha256"):
        load_model(tmp_path / "run")
    # truncated, with the checksum removed from config.json: the safetensors reader notices
    cfg_path = tmp_path / "run" / CONFIG_FILE
    meta = json.loads(cfg_path.read_text())
    meta["weights_sha256"] = None
    cfg_path.write_text(json.dumps(meta))
    weights.write_bytes(good[: len(good) // 2])
    with pytest.raises(RlipError, match="truncated"):
        load_model(tmp_path / "run")
    (tmp_path / "half.safetensors").write_bytes(good[:100])
    with pytest.raises(RlipError, match="truncated"):
        load_model(tmp_path / "half.safetensors", arch="mresnet18_tiny")
    # shape mismatch: config.json claims another width
    weights.write_bytes(good)
    meta["model"]["kwargs"]["width"] = 8
    cfg_path.write_text(json.dumps(meta))
    with pytest.raises(RlipError, match=r"shape mismatch .*file \(4, 3, 3, 3\) vs model \(8, 3, 3, 3\)") as e:
        load_model(tmp_path / "run")
    assert "\n" not in str(e.value)
    # truncated .pt
    save_pt(model, tmp_path / "m.pt")
    data = (tmp_path / "m.pt").read_bytes()
    (tmp_path / "m.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(RlipError, match="truncated"):
        load_model(tmp_path / "m.pt")
    # bare state_dict of another architecture
    torch.save(create_model("unet_tiny").state_dict(), tmp_path / "unet.pt")
    with pytest.raises(RlipError, match=r"does not fit mresnet18_tiny:.*missing stem"):
        load_model(tmp_path / "unet.pt", arch="mresnet18_tiny")


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(RlipError, match="no such"):
        load_model(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RlipError, match=r"config\.json is missing"):
        load_model(tmp_path / "empty")
    save_model(create_model("unet_tiny"), tmp_path / "run")
    (tmp_path / "run" / WEIGHTS_FILE).unlink()
    with pytest.raises(RlipError, match="not found"):
        load_model(tmp_path / "run")
    (tmp_path / "run" / CONFIG_FILE).write_text("{not json")
    with pytest.raises(RlipError, match="not valid JSON"):
        load_model(tmp_path / "run")
    (tmp_path / "run" / CONFIG_FILE).write_text(json.dumps({"format": "other"}))
    with pytest.raises(RlipError, match="not an rlip model config"):
        read_model_meta(tmp_path / "run")
    (tmp_path / "list.pt").write_bytes(b"")
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(RlipError, match="neither"):
        load_model(tmp_path / "list.pt")


def test_library_never_loads_with_weights_only_false() -> None:
    root = Path(robustbench_lip.__file__).parent
    pattern = re.compile(r"weights_only\s*=\s*False")
    offenders = [str(p) for p in root.rglob("*.py") if pattern.search(p.read_text(encoding="utf-8"))]
    assert offenders == []
    assert "weights_only=True" in (root / "modelio" / "files.py").read_text(encoding="utf-8")


def test_load_model_device_and_mode(tmp_path: Path) -> None:
    model = create_model("unet_i2i_tiny").train()
    save_model(model, tmp_path)
    loaded = load_model(tmp_path, device="cpu")
    assert not any(m.training for m in loaded.modules())
    assert all(p.device.type == "cpu" for p in loaded.parameters())
    assert model.training  # saving does not change the caller's model
    with pytest.raises(RlipError, match="device"):
        load_model(tmp_path, device="tpu")


def test_load_model_leaves_the_global_rng_alone(tmp_path: Path) -> None:
    save_model(create_model("mresnet18_tiny"), tmp_path)
    state = torch.get_rng_state().clone()
    load_model(tmp_path)
    assert torch.equal(torch.get_rng_state(), state)

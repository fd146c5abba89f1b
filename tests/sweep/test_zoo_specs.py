"""Every spec in zoo/ parses, names registered models, and each model can be built for its dataset
(with masks to learn from when it is not a classifier) — no data files read, nothing trained."""

from __future__ import annotations

from pathlib import Path

import pytest

from robustbench_lip.config import SweepSpec
from robustbench_lip.data import dataset_info
from robustbench_lip.errors import RlipError
from robustbench_lip.models import create_model_for, list_models
from tests.helpers.paths import ZOO

SPECS = sorted(ZOO.glob("*.toml"))


def test_the_zoo_has_the_constrained_specs() -> None:
    names = {p.name for p in SPECS}
    for n in ("shapes_lip_cpu.toml", "lesions_fne_cpu.toml", "cifar10_mresnet18_lip_gpu.toml"):
        assert n in names
    assert "coco_unet_fne_gpu.toml" in names


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.stem)
def test_spec_builds(path: Path) -> None:
    spec = SweepSpec.from_toml(path)
    assert spec.name == path.stem
    assert all(cfg.model in spec.models for _, cfg in spec.runs())  # every run's TrainConfig is valid
    try:
        info = dataset_info(spec.data, **spec.data_options)
    except RlipError as e:  # e.g. coco without `categories` reads its annotation file
        pytest.skip(f"{path.name}: the dataset's description needs its files ({e})")
    for model in spec.models:
        assert model in list_models()
        m = create_model_for(model, info, **spec.model_options)
        if m.config.task != "classification":
            assert m.config.num_mask_classes is not None, f"{model} cannot learn the masks of {spec.data}"

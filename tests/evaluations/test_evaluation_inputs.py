"""evaluations.inputs: the one dataset lookup of certify and attack (name, saved options, "none")."""

from __future__ import annotations

import pytest

from robustbench_lip.data import dataset_info
from robustbench_lip.errors import RlipError
from robustbench_lip.evaluations.inputs import dataset_name, load_test_set, model_meta

OPTS = {"n_train": 4, "n_test": 5, "image_size": 16, "seed": 3}


def _meta() -> dict:
    return {"model": {"input_size": [3, 16, 16]}, "dataset": dataset_info("shapes", **OPTS).to_dict()}


def test_dataset_name_rule() -> None:
    meta = _meta()
    assert dataset_name(None, meta) == "shapes"  # the model's own
    assert dataset_name("lesions", meta) == "lesions"  # --data wins
    assert dataset_name("none", meta) is None and dataset_name("None", meta) is None
    assert dataset_name(None, None) is None and dataset_name(None, {"dataset": None}) is None


def test_saved_options_apply_to_the_models_own_dataset_only() -> None:
    meta = _meta()
    own = load_test_set("shapes", None, meta)
    assert len(own) == OPTS["n_test"] and own.info.image_size == (16, 16)
    other = load_test_set("lesions", None, meta)
    assert other.info.name == "lesions" and len(other) != OPTS["n_test"]


def test_model_meta_of_a_foreign_file(tmp_path) -> None:
    path = tmp_path / "m.pt2"
    path.write_bytes(b"")
    assert model_meta(path) is None
    with pytest.raises(RlipError, match="pass --data NAME"):
        model_meta(path, need="pass --data NAME")

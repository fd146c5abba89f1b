"""Typed records: to_dict / from_dict round trips, records of the unversioned format, the
"already recorded" rule."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from robustbench_lip.errors import RlipError
from robustbench_lip.records import (
    SCHEMA_VERSION,
    AttackRecord,
    CertificateKind,
    CertifyRecord,
    EvalRecord,
    FneVerdict,
    Record,
    TrainRecord,
    is_recorded,
    make_record,
    read_record,
    record_path,
    settings_key,
    write_record,
)

MODEL = {"arch": "m", "task": "classification"}
DATASET = {"name": "shapes"}


def _examples() -> list[Record]:
    env = {"rlip": "0.1.0", "torch": "2", "device": "cpu"}
    common = dict(model=MODEL, dataset=DATASET, env=env, created="2024-01-01T00:00:00+00:00", wall_s=1.5)
    return [
        TrainRecord(
            settings={"lam": 0.1},
            status="finished",
            history=[{"epoch": 1, "loss": 0.5}],
            final={"accuracy": 0.9, "miou": None},
            penalty={"lam": 0.1},
            **common,
        ),
        CertifyRecord(
            settings={"n": 6, "eps": ["36/255"]},
            lipschitz={"A": {"upper": 2.0, "lower": 1.0}, "R": None},
            fne={"verdict": FneVerdict.UNDEFINED.value, "violated": None},
            certified_accuracy={"36/255": 0.5},
            clean={"accuracy": 0.75, "miou": None, "pixel_accuracy": None},
            unsupported_ops=[],
            timings={"upper_s": 0.1},
            notes=[],
            layers=[{"name": "conv", "factor": 1.0}],
            **common,
        ),
        AttackRecord(
            settings={"eps": ["8/255"], "attack": ["pgd"]},
            clean={"accuracy": 1.0, "precision": 1.0, "miou": None},
            results=[{"attack": "pgd", "eps": 8 / 255, "accuracy": 0.5}],
            n=10,
            objective="cls",
            task="classifier",
            attacks=["pgd"],
            levels={"accuracy": "image"},
            ignore_index=255,
            **common,
        ),
        EvalRecord(settings={"n": 4}, metrics={"accuracy": 0.5}, **common),
    ]


@pytest.mark.parametrize("rec", _examples(), ids=lambda r: r.kind.value)
def test_round_trip_through_json(rec: Record, tmp_path: Path) -> None:
    d = rec.to_dict()
    assert d["kind"] == rec.kind.value and d["schema_version"] == SCHEMA_VERSION
    back = type(rec).from_dict(json.loads(json.dumps(d)))
    assert back == rec and back.to_dict() == d
    assert Record.from_dict(d) == rec  # dispatch on kind
    p = write_record(tmp_path / "r.json", rec)
    assert read_record(p) == rec


def test_optional_payload_keys_are_left_out_when_null() -> None:
    cert = CertifyRecord(model=None, dataset=None, settings={})
    assert "layers" not in cert.to_dict() and cert.to_dict()["certified_miou"] is None
    train = TrainRecord(model=None, dataset=None, settings={}, status="failed", error="nan loss")
    assert train.to_dict()["error"] == "nan loss"
    assert "error" not in TrainRecord(model=None, dataset=None, settings={}).to_dict()


def test_unversioned_record_loads_as_version_0() -> None:
    """A certify record exactly as written before schema versions (no schema_version, no
    certificate key), with a key this version does not know."""
    old = {
        "kind": "certify",
        "model": MODEL,
        "dataset": DATASET,
        "settings": {"n": 6},
        "env": {"rlip": "0.1.0", "torch": "2", "device": "cpu"},
        "created": "2024-01-01T00:00:00+00:00",
        "wall_s": 2.0,
        "lipschitz": {"A": {"upper": 3.0}, "R": None},
        "fne": {"verdict": "not violated on tested points", "violated": False},
        "certified_accuracy": None,
        "future_key": [1, 2],
    }
    rec = Record.from_dict(old)
    assert isinstance(rec, CertifyRecord) and rec.schema_version == 0
    assert rec.certificate is CertificateKind.LIPSCHITZ and rec.fne_verdict is FneVerdict.NOT_VIOLATED
    assert rec.lipschitz == old["lipschitz"] and rec.wall_s == 2.0 and rec.timings is None
    d = rec.to_dict()
    assert {k: d[k] for k in old} == old  # every old key written back unchanged


def test_bad_records_are_refused() -> None:
    with pytest.raises(RlipError, match="unknown kind"):
        Record.from_dict({"kind": "nope"})
    with pytest.raises(RlipError, match="expected a attack record"):
        AttackRecord.from_dict({"kind": "train"})
    with pytest.raises(RlipError, match="newer"):
        Record.from_dict({"kind": "eval", "schema_version": SCHEMA_VERSION + 1})


def test_make_record_matches_the_typed_record() -> None:
    rec = make_record(
        "attack", model=MODEL, dataset=DATASET, settings={"n": 1}, payload={"results": [], "n": 1}, wall_s=1
    )
    typed = AttackRecord.from_dict(rec)
    assert typed.schema_version == SCHEMA_VERSION and typed.results == [] and typed.n == 1
    assert typed.to_dict()["created"] == rec["created"]


def test_already_recorded_rule(tmp_path: Path) -> None:
    run = tmp_path / "run"
    settings = {"eps": ["8/255"], "n": 4}
    assert not is_recorded(run, "attack", settings)  # no results folder at all
    write_record(record_path(run, "attack", settings), {"kind": "attack", "settings": settings})
    assert is_recorded(run, "attack", dict(reversed(settings.items())))  # key order free
    assert not is_recorded(run, "attack", {**settings, "n": 5})
    assert not is_recorded(run, "certify", settings)  # another kind is another evaluation
    # a renamed record still counts through its settings; an unreadable file is skipped
    renamed = run / "results" / "certify-old.json"
    write_record(renamed, {"kind": "certify", "settings": {"n": 6}})
    (run / "results" / "certify-broken.json").write_text("{not json")
    assert is_recorded(run, "certify", {"n": 6}) and not is_recorded(run, "certify", {"n": 7})
    assert record_path(run, "certify", {"n": 6}).name == f"certify-{settings_key({'n': 6})}.json"

"""Typed payloads (records.payloads): today's and v0 record files round-trip exactly, and the
structure checks of `from_dict` refuse what the readers cannot use."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from robustbench_lip.errors import RlipError
from robustbench_lip.records import ENVELOPE_KEYS, VERSION_KEY, read_record
from robustbench_lip.records.payloads import (
    PAYLOAD_TYPES,
    AttackPayload,
    AttackResult,
    CertifyPayload,
    CleanMetrics,
    TrainPayload,
)
from tests.helpers.paths import FIXTURES

FILES = sorted(FIXTURES.glob("records_v*/*/results/*.json"))
_ENVELOPE = {"kind", VERSION_KEY, *ENVELOPE_KEYS}


def _payload(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k not in _ENVELOPE}


def test_fixtures_cover_every_payload_shape() -> None:
    kinds = {(json.loads(p.read_text())["kind"], json.loads(p.read_text()).get("certificate")) for p in FILES}
    assert {("train", None), ("attack", None), ("certify", "lipschitz"), ("certify", "smoothed")} <= kinds
    assert any(VERSION_KEY not in json.loads(p.read_text()) for p in FILES)  # v0 records too


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parts[-4]}/{p.name}")
def test_round_trip_is_exact(path: Path) -> None:
    raw = json.loads(path.read_text())
    payload = _payload(raw)
    typed = PAYLOAD_TYPES[raw["kind"]].from_dict(payload)
    # same keys, same order, same values (JSON text equal), nothing added for keys the file lacks
    assert json.dumps(typed.to_dict()) == json.dumps(payload)
    # through the record: the typed view of a loaded record reads the file's values
    rec_typed = read_record(path).typed()
    assert {k: v for k, v in rec_typed.to_dict().items() if k in payload} == payload


def test_typed_fields_read_the_stored_values() -> None:
    for path in FILES:
        raw = json.loads(path.read_text())
        typed = PAYLOAD_TYPES[raw["kind"]].from_dict(_payload(raw))
        if isinstance(typed, CertifyPayload) and not typed.is_smoothed:
            assert typed.lipschitz is not None and typed.lipschitz.A is not None
            assert typed.lipschitz.A.upper == raw["lipschitz"]["A"]["upper"]
            assert typed.lipschitz.A.upper >= typed.lipschitz.A.lower  # certified ≥ witnessed
        elif isinstance(typed, CertifyPayload):
            s = raw["smoothing"]
            for task in ("classification", "segmentation"):
                part = typed.smoothing.task(task)  # type: ignore[union-attr]
                assert (part is None) == (s[task] is None)
                if part is not None:
                    assert part.abstention_rate == s[task]["abstention_rate"]
        elif isinstance(typed, AttackPayload):
            assert [r.accuracy for r in typed.results or []] == [r["accuracy"] for r in raw["results"]]
            assert typed.level == raw["levels"]["accuracy"]
        elif isinstance(typed, TrainPayload):
            assert typed.final is not None and typed.final.accuracy == raw["final"]["accuracy"]
            assert len(typed.history or []) == len(raw["history"])


@pytest.mark.parametrize(
    ("cls", "payload", "match"),
    [
        (CertifyPayload, {"certificate": "lipschitz", "lipschitz": None}, "'lipschitz' object"),
        (CertifyPayload, {"certificate": "lipschitz", "lipschitz": [1.0]}, "lipschitz is not an object"),
        (CertifyPayload, {"certificate": "smoothed", "smoothing": None}, "'smoothing' object"),
        (CertifyPayload, {"lipschitz": {"A": 3.0}}, r"lipschitz\.A is not an object"),
        (CertifyPayload, {"lipschitz": {}, "certified_accuracy": [0.5]}, "certified_accuracy"),
        (AttackPayload, {"results": {"pgd": 0.1}}, "results is not a list"),
        (AttackPayload, {"results": [{"attack": "pgd"}, 7]}, r"results\[1\] is not an object"),
        (AttackPayload, {"clean": {}}, "results"),
        (TrainPayload, {"history": []}, "status"),
    ],
)
def test_from_dict_checks_the_structure(cls: type, payload: dict[str, Any], match: str) -> None:
    with pytest.raises(RlipError, match=match):
        cls.from_dict(payload)


def test_payload_built_in_code_writes_fields_in_order_and_keeps_unknown_keys() -> None:
    res = AttackResult(attack="pgd", norm="l2", eps=0.5, accuracy=0.25)
    d = res.to_dict()
    assert list(d)[:4] == ["attack", "norm", "eps", "eps_text"] and d["accuracy"] == 0.25
    assert AttackResult.from_dict(d) == res
    # optional keys are left out when None; unknown keys survive a round trip
    cert = CertifyPayload(certificate="lipschitz", clean=CleanMetrics(accuracy=0.5))
    assert "smoothing" not in cert.to_dict() and cert.to_dict()["clean"]["accuracy"] == 0.5
    loaded = TrainPayload.from_dict({"status": "finished", "future_key": {"x": 1}})
    assert loaded.extra == {"future_key": {"x": 1}}
    assert loaded.to_dict() == {"status": "finished", "future_key": {"x": 1}}
    loaded.error = "boom"  # a field set after loading is written after the stored keys
    assert list(loaded.to_dict()) == ["status", "future_key", "error"]


@pytest.mark.parametrize(
    ("record", "match"),
    [
        ({"settings": {}}, "no 'kind' key"),
        ({"kind": "train", "settings": None, "status": "finished"}, "'settings' is not an object"),
        ({"kind": "certify", "settings": {}, "lipschitz": {}, "wall_s": "12 s"}, "bad wall_s"),
    ],
)
def test_record_envelope_checks(record: dict[str, Any], match: str) -> None:
    from robustbench_lip.records import record_from_dict

    with pytest.raises(RlipError, match=match):
        record_from_dict(record)


def test_typed_view_of_a_record_names_the_kind_in_its_errors() -> None:
    from robustbench_lip.records import record_from_dict

    rec = record_from_dict({"kind": "attack", "settings": {}, "results": [{"attack": "pgd"}, "x"]})
    with pytest.raises(RlipError, match=r"attack record\.results\[1\] is not an object"):
        rec.typed()

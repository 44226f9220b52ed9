"""Inputs in the forms users have them, typed results, and one exception class per kind: each
checked against the module's own answer for plain inputs, the golden vectors, or the Rust
source the Python mirrors (reason codes, status bytes)."""

from __future__ import annotations

import datetime
import json
import math
import re

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import maskflow
from maskflow import (
    MaskAuthenticationFailed,
    MaskflowError,
    NotAMask,
    NotText,
    Reason,
    Rejection,
    Row,
    Transformer,
    UnknownKeyId,
    UnmaskError,
)
from maskflow import _abi

from testkit import REPO, SENT_MS, key_text, vector_body

EVENT = b'{"user_id": "u1", "ip": "10.0.0.1", "app_version": "2.3.0", "device_id": "d-1"}'
UTC = datetime.timezone.utc


@pytest.fixture(scope="module")
def t() -> Transformer:
    return Transformer(keys=key_text())


def test_reason_mirrors_rust_and_the_hosts_own_codes():
    rust = set(re.findall(r'=> "([a-z_0-9]+)"', (REPO / "transform" / "src" / "reason.rs").read_text()))
    abi = (REPO / "transform" / "ABI.md").read_text()
    section = abi[abi.index("## Reason codes"):abi.index("## Rules in detail")]
    documented = set(re.findall(r"`([a-z_0-9]+)`", section))
    # Rust's Reason holds the module's 14 codes and the host's own two (module_failed, sink_refused).
    assert len(rust) == 16 and {"module_failed", "sink_refused"} < rust
    assert {r.value for r in Reason} == rust == documented, "Reason mirrors Rust's and ABI.md's codes"
    assert str(Reason.MODULE_FAILED) == "module_failed" and Reason("invalid_ip") == "invalid_ip"


def test_status_bytes_mirror_wire_rs():
    wire = (REPO / "transform" / "src" / "wire.rs").read_text()
    rust = {name: int(v) for name, v in re.findall(r"pub const (STATUS_[A-Z_]+): u8 = (\d+);", wire)}
    python = {name: getattr(_abi, name) for name in dir(_abi) if name.startswith("STATUS_")}
    assert rust == python and len(rust) == 7


def test_rows_are_typed_by_column_kind(t, golden_vectors):
    v = next(v for v in golden_vectors if v["name"] == "sample_event")
    row = t.transform_one(vector_body(v), v["sent_timestamp_ms"])
    expected = v["expected"]["row"]
    assert isinstance(row, Row)
    assert row["app_version"] == int(expected["app_version"]) and type(row["app_version"]) is int
    assert row["create_date"] == datetime.date.fromisoformat(expected["create_date"])
    assert type(row["create_date"]) is datetime.date
    assert row["masked_ip"] == expected["masked_ip"] and row["locale"] == expected["locale"]
    assert dict(row) == {**expected, "app_version": 2003000, "create_date": datetime.date(2023, 11, 14)}
    assert row.to_json() == {"row": expected}
    nulls = t.transform_one(b'{"user_id": "u"}', SENT_MS)
    assert nulls["app_version"] is None and nulls["masked_ip"] is None


def test_rejections_carry_a_reason_enum(t):
    r = t.transform_one(b'{"user_id": "u", "ip": "999.1.1.1"}', SENT_MS)
    assert isinstance(r, Rejection) and r.reason is Reason.INVALID_IP
    assert "999" not in r.message, "the message names the field, never the value"
    assert t.unmask_bytes(r.encrypted_body) == ("raw_body", b'{"user_id": "u", "ip": "999.1.1.1"}')
    assert json.loads(json.dumps(r.to_json()))["rejection"]["reason"] == "invalid_ip"


@pytest.mark.parametrize("one", ['{"user_id": "u"}', b'{"user_id": "u"}', bytearray(b'{"user_id": "u"}'), memoryview(b'{"user_id": "u"}')])
def test_one_body_where_a_sequence_is_meant_is_refused_never_split(t, one):
    with pytest.raises(TypeError, match="transform_one"):
        t.transform(one)
    with pytest.raises(TypeError, match="transform_one"):
        list(t.transform_stream(one))
    assert isinstance(t.transform_one(one if not isinstance(one, memoryview) else one.tobytes(), SENT_MS), Row)


def test_arrays_and_scalars_of_numpy_pyarrow_and_pandas(t):
    bodies = [EVENT, b'{"user_id": "u2", "app_version": 7}', b"not json"]
    times = [SENT_MS, SENT_MS + 86_400_000, SENT_MS]
    reference = [o.to_json() for o in t.transform(bodies, times)]
    text = [b.decode() for b in bodies]
    forms = [
        (np.array(bodies, dtype=object), np.array(times, dtype=np.int64)),
        (np.array(text), np.array(times, dtype=np.uint64)),
        (pa.array(bodies, pa.binary()), pa.array(times, pa.int64())),
        (pa.chunked_array([pa.array(text[:1]), pa.array(text[1:])]), pa.array(times, pa.uint64())),
        (pd.Series(bodies), pd.Series(times)),
        (tuple(bodies), [float(x) for x in times]),
        (bodies, pa.array([datetime.datetime.fromtimestamp(x / 1000, UTC) for x in times], pa.timestamp("ms", "UTC"))),
    ]
    for got_bodies, got_times in forms:
        got = [o.to_json() for o in t.transform(got_bodies, got_times)]
        assert got == reference, (type(got_bodies), type(got_times))
    for scalar in (np.int64(SENT_MS), pa.scalar(SENT_MS), np.float64(SENT_MS), float(SENT_MS),
                   datetime.datetime.fromtimestamp(SENT_MS / 1000, UTC), pd.Timestamp(SENT_MS, unit="ms", tz="UTC")):
        assert t.transform_one(EVENT, scalar).to_json() == t.transform_one(EVENT, SENT_MS).to_json(), type(scalar)


@pytest.mark.parametrize(
    "sent, error, words",
    [
        (1.5, ValueError, "whole number of ms"),
        (math.nan, ValueError, "whole number of ms"),
        (np.float64(1e12 + 0.25), ValueError, "whole number of ms"),
        (True, TypeError, "bool"),
        ("1700000000000", TypeError, "str"),
        (datetime.datetime(2024, 1, 1), ValueError, "without a zone"),
        ([SENT_MS, None], TypeError, r"sent_timestamp_ms\[1\] is None"),
        ([SENT_MS], ValueError, "2 bodies but 1"),
        (object(), TypeError, "object"),
    ],
)
def test_times_that_cannot_be_read_are_clear_errors(t, sent, error, words):
    with pytest.raises(error, match=words):
        t.transform([EVENT, EVENT], sent)


def test_times_outside_the_abi_range_are_the_modules_rejection(t):
    for sent in (2**70, -(2**70), -1, 253402300800000):
        r = t.transform_one(EVENT, sent)
        assert isinstance(r, Rejection) and r.reason is Reason.INVALID_TIMESTAMP, sent


def test_a_body_of_another_type_is_refused_naming_its_position_not_its_value(t):
    for bad, words in ((None, r"bodies\[1\] is None"), (12345, r"bodies\[1\] is a int"), ({"a": 1}, r"bodies\[1\] is a dict")):
        with pytest.raises(TypeError, match=words) as caught:
            t.transform([EVENT, bad])
        assert "12345" not in str(caught.value)


def test_a_lone_surrogate_is_the_modules_body_not_utf8(t):
    r = t.transform_one('{"user_id": "\ud800"}', SENT_MS)
    assert isinstance(r, Rejection) and r.reason is Reason.BODY_NOT_UTF8


def test_unmask_of_a_body_that_is_not_text_says_so(t):
    body = b'{"user_id": "\xff"}'
    r = t.transform_one(body, SENT_MS)
    assert r.reason is Reason.BODY_NOT_UTF8
    with pytest.raises(NotText, match="unmask_bytes") as caught:
        t.unmask(r.encrypted_body)
    assert "\ufffd" not in str(caught.value)
    assert t.unmask_bytes(r.encrypted_body).value == body
    text = t.transform_one(b"[1]", SENT_MS)
    assert t.unmask(text.encrypted_body) == "[1]"


def test_unmask_failures_have_a_class_per_kind(t):
    mask = t.transform_one(EVENT, SENT_MS)["masked_ip"]
    other = Transformer(keys="k1:" + "A" * 86 + "==")
    renamed = Transformer(keys="k7:" + "A" * 86 + "==")
    flipped = mask[:-2] + ("A" if mask[-2] != "A" else "B") + mask[-1]
    for bad, kind in (("hello", NotAMask), (b"\xff.abc", NotAMask), ("k1.AAA", NotAMask),
                      (flipped, MaskAuthenticationFailed)):
        with pytest.raises(kind):
            t.unmask(bad)
    with pytest.raises(MaskAuthenticationFailed):
        other.unmask(mask)
    with pytest.raises(UnknownKeyId, match="k1"):
        renamed.unmask(mask)
    with pytest.raises(TypeError):
        t.unmask(42)


def test_every_error_is_a_maskflow_error_and_refusals_are_value_errors():
    for name in maskflow.__all__:
        cls = getattr(maskflow, name)
        if isinstance(cls, type) and issubclass(cls, Exception):
            assert issubclass(cls, MaskflowError), name
            assert issubclass(cls, ValueError) != (cls is maskflow.ModuleError) or cls is MaskflowError, name
    for kind in (NotAMask, UnknownKeyId, MaskAuthenticationFailed, NotText):
        assert issubclass(kind, UnmaskError)

"""Sent times are read as `maskflow transform --sent-timestamp-field` reads them (the CLI is the
reference where it reads a value), fall back as the CLI's do, and a value that cannot be read is
an `invalid_timestamp` rejection naming the field, never a wrong date or a dead job."""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyspark.sql import functions as F

import maskflow_spark
from conftest import as_outcomes
from maskflow import Transformer
from testkit import SENT_MS, TEST_KEY, generated, host_transform

FIELD = ("--sent-timestamp-field", "sent_at")
DAY = 86_400_000


def job(spark, tmp_path, bodies, *, sent_ms=None, sent_field=None, column=None, mtime_ms=None, fmt="parquet"):
    """The outcomes of `bodies` through read_events + mask_events, in input order."""
    folder = tmp_path / "in"
    folder.mkdir()
    if fmt == "ndjson":
        path = folder / "events.ndjson"
        path.write_bytes(b"\n".join(bodies) + b"\n")
    else:
        table = {"n": list(range(len(bodies))), "body": pa.array(bodies, pa.binary())}
        if column is not None:
            table["sent_ms"] = column
        path = folder / "events.parquet"
        pq.write_table(pa.table(table), path)
    if mtime_ms is not None:
        os.utime(path, ns=(mtime_ms * 1_000_000, mtime_ms * 1_000_000))
    df = maskflow_spark.read_events(spark, str(folder), fmt, sent_ms)
    rows = maskflow_spark.mask_events(df, TEST_KEY.read_text(), sent_field=sent_field).collect()
    if fmt == "parquet":
        rows = sorted(rows, key=lambda r: r["n"])
    return as_outcomes(rows)


def with_sent_at(value) -> bytes:
    return json.dumps({"user_id": "u1", "ip": "10.0.0.1", "sent_at": value}).encode()


def test_events_without_the_field_fall_back_to_sent_timestamp_ms(spark, tmp_path):
    bodies = generated(500, seed=3)  # the generator's events have no sent_at
    got = job(spark, tmp_path, bodies, sent_ms=SENT_MS, sent_field="sent_at")
    assert got == host_transform(bodies, SENT_MS, args=FIELD)
    assert sum("row" in o for o in got) > 450


def test_events_without_the_field_or_a_default_take_their_files_time(spark, tmp_path):
    bodies = generated(300, seed=4) + [with_sent_at(None)]  # null counts as absent
    mtime = 1_600_000_000_000
    got = job(spark, tmp_path, bodies, sent_field="sent_at", mtime_ms=mtime, fmt="ndjson")
    # The CLI's arrival time, given as the same instant.
    assert got == host_transform(bodies, mtime, args=FIELD)
    assert got[-1]["row"]["create_date"] == "2020-09-13"


def test_readable_field_values_give_the_clis_dates(spark, tmp_path):
    values = [1_700_000_000_123, 1_600_000_000_000, SENT_MS + 5 * DAY, "2023-11-14T22:13:20Z",
              "2020-02-29T23:59:59.999Z", "2021-01-01 00:00:00.000999Z", "1999-12-31T23:59:59Z"]
    bodies = [with_sent_at(v) for v in values] + [with_sent_at(v) for v in values[:2]]
    got = job(spark, tmp_path, bodies, sent_ms=0, sent_field="sent_at")
    assert got == host_transform(bodies, 0, args=FIELD)
    assert len({o["row"]["create_date"] for o in got}) == 6


def test_offsets_are_honoured(spark, tmp_path):
    cases = {"2023-11-15T00:30:00+01:00": "2023-11-14", "2023-11-14T23:30:00.5-01:00": "2023-11-15",
             "2023-11-14t23:30:00z": "2023-11-14"}
    got = job(spark, tmp_path, [with_sent_at(v) for v in cases], sent_ms=0, sent_field="sent_at")
    for (value, date), out in zip(cases.items(), got):
        expected_ms = int(datetime.fromisoformat(value.upper().replace("Z", "+00:00")).timestamp() * 1000)
        assert out == host_transform([with_sent_at(value)], expected_ms)[0], value
        assert out["row"]["create_date"] == date


UNREADABLE = [1_700_000_000, 0, -5, 99_999_999_999, 1.7e12, 1_700_000_000_000.5, "yesterday",
              "2023-11-14T22:13:20", "2023-11-14", "2023-13-01T00:00:00Z", "1700000000000", True,
              [1_700_000_000_000], {"ms": 1_700_000_000_000}]


def test_values_it_cannot_read_are_rejections_naming_the_field(spark, tmp_path):
    bodies = [with_sent_at(v) for v in UNREADABLE]
    bodies.append(json.dumps({"ip": "10.0.0.1", "sent_at": "yesterday"}).encode())  # an earlier fault first
    got = job(spark, tmp_path, bodies, sent_ms=SENT_MS, sent_field="sent_at")
    unmasker = Transformer(keys=TEST_KEY.read_text())
    for value, body, out in zip(UNREADABLE, bodies, got):
        assert "rejection" in out, (value, out)
        r = out["rejection"]
        assert r["reason"] == "invalid_timestamp" and "`sent_at`" in r["message"], (value, r)
        if len(str(value)) >= 4:  # shorter ones are in any text ("0")
            assert json.dumps(value) not in r["message"] and str(value) not in r["message"], r["message"]
        assert unmasker.unmask_bytes(r["encrypted_body"]).value == body
    assert got[-1]["rejection"]["reason"] == "missing_field"


def test_sent_ms_columns_of_integers_timestamps_and_rfc3339_strings(spark, tmp_path):
    bodies = generated(60, seed=5)
    times = [SENT_MS, SENT_MS + 400 * DAY, 951_782_400_000] * 20
    expected = []
    for body, t in zip(bodies, times):
        expected += host_transform([body], t)
    as_dates = pa.array([datetime.fromtimestamp(t / 1000, timezone.utc) for t in times], pa.timestamp("ms", "UTC"))
    as_text = pa.array([datetime.fromtimestamp(t / 1000, timezone.utc).isoformat().replace("+00:00", "Z") for t in times])
    for i, column in enumerate((pa.array(times, pa.int64()), as_dates, as_text)):
        (tmp_path / f"c{i}").mkdir()
        got = job(spark, tmp_path / f"c{i}", bodies, column=column)
        assert got == expected, column.type


def test_a_null_sent_ms_is_a_rejection_not_1970(spark, tmp_path):
    bodies = [with_sent_at(None), with_sent_at(None)]
    got = job(spark, tmp_path, bodies, column=pa.array([None, SENT_MS], pa.int64()))
    assert got[0]["rejection"]["reason"] == "invalid_timestamp" and "`sent_ms`" in got[0]["rejection"]["message"]
    assert got[1]["row"]["create_date"] == "2023-11-14"


@pytest.mark.parametrize("cast, words", [("timestamp_ntz", "no zone"), ("double", "double"), ("date", "date")])
def test_sent_ms_columns_it_cannot_read_are_refused_before_the_job(spark, cast, words):
    df = spark.createDataFrame([(b"{}", SENT_MS)], "body binary, sent_ms bigint")
    if cast == "timestamp_ntz":
        df = df.withColumn("sent_ms", F.to_timestamp_ntz(F.lit("2023-11-14 22:13:20")))
    elif cast == "date":
        df = df.withColumn("sent_ms", F.to_date(F.lit("2023-11-14")))
    else:
        df = df.withColumn("sent_ms", F.col("sent_ms").cast(cast))
    with pytest.raises(ValueError, match=words):
        maskflow_spark.mask_events(df, TEST_KEY.read_text())


def test_a_parquet_with_sent_ms_and_a_default_is_refused(spark, tmp_path):
    pq.write_table(pa.table({"body": [b"{}"], "sent_ms": [SENT_MS]}), tmp_path / "e.parquet")
    with pytest.raises(ValueError, match="--sent-timestamp-ms"):
        maskflow_spark.read_events(spark, str(tmp_path), "parquet", SENT_MS)

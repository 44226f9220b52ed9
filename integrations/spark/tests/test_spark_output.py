"""A failed job leaves no partial result: `<output>` is the previous run's complete result (or
absent) until a new complete one replaces it, and no incomplete copy is left behind."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyspark.sql import DataFrameWriter
from pyspark.sql import functions as F

import maskflow_spark
from conftest import private_key
from testkit import SENT_MS, TEST_KEY, generated


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def leftovers(tmp_path: Path) -> list[str]:
    return [name for name in os.listdir(tmp_path) if ".incomplete-" in name or ".replaced-" in name]


def events(tmp_path: Path, name: str, seed: int) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "events.ndjson").write_bytes(b"\n".join(generated(400, seed=seed)) + b"\n")
    return folder


def test_a_job_that_fails_between_its_two_writes_leaves_the_previous_output(spark, tmp_path, monkeypatch, capsys):
    key = private_key(tmp_path, TEST_KEY.read_text())
    out = tmp_path / "out"
    args = ["--output", str(out), "--key-file", str(key), "--sent-timestamp-ms", str(SENT_MS)]
    assert maskflow_spark.main(["--input", str(events(tmp_path, "day1", 1)), *args]) == 0
    before = snapshot(out)
    assert any(k.startswith("user_logins_rejected/") and k.endswith(".parquet") for k in before)

    writes: list[str] = []
    real = DataFrameWriter.parquet

    def second_write_fails(self, path, *a, **k):
        writes.append(path)
        if len(writes) == 2:
            raise RuntimeError("No space left on device (simulated)")
        return real(self, path, *a, **k)

    monkeypatch.setattr(DataFrameWriter, "parquet", second_write_fails)
    code = maskflow_spark.main(["--input", str(events(tmp_path, "day2", 2)), *args])
    err = capsys.readouterr().err
    assert code == 1 and "as it was" in err and "No space left" in err, err
    assert len(writes) == 2
    assert snapshot(out) == before, "the previous result is intact, not half replaced"
    assert leftovers(tmp_path) == []

    monkeypatch.setattr(DataFrameWriter, "parquet", real)
    assert maskflow_spark.main(["--input", str(tmp_path / "day2"), *args]) == 0
    after = snapshot(out)
    assert after != before and set(k.split("/")[0] for k in after) == {"user_logins", "user_logins_rejected"}
    assert leftovers(tmp_path) == []


def test_a_job_whose_tasks_fail_writes_nothing(spark, tmp_path):
    bodies = generated(3000, seed=6)
    pq.write_table(pa.table({"n": list(range(len(bodies))), "body": pa.array(bodies, pa.binary()),
                             "sent_ms": [SENT_MS] * len(bodies)}), tmp_path / "e.parquet")
    # An input that breaks part-way through (a corrupt record, a UDF bug): task 2,500 fails.
    breaks = F.udf(lambda n: n // (n - 2500), "long")
    df = spark.read.parquet(str(tmp_path / "e.parquet")).withColumn("n", breaks("n"))
    out = tmp_path / "out"
    with pytest.raises(Exception, match="ZeroDivisionError"):
        maskflow_spark.write_outcomes(maskflow_spark.mask_events(df, TEST_KEY.read_text()), str(out))
    assert not out.exists()
    assert leftovers(tmp_path) == []

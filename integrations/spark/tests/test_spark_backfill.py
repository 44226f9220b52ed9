"""A Spark backfill (local mode) masks exactly as `maskflow transform` does, and scales with cores."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from pyspark.sql import SparkSession

import maskflow_spark
from conftest import as_outcomes, private_key, spark_session
from maskflow import Transformer
from testkit import SENT_MS, TEST_KEY, assert_vector, generated, host_transform, put_secret, vector_body


def test_golden_vectors_and_generated_events_equal_the_host_on_two_cores(spark, tmp_path, golden_vectors):
    golden_bodies = [vector_body(v) for v in golden_vectors]
    gen = generated(4000, seed=13)
    bodies = golden_bodies + gen
    times = [v["sent_timestamp_ms"] for v in golden_vectors] + [SENT_MS] * len(gen)
    table = pa.table({"n": list(range(len(bodies))), "body": pa.array(bodies, pa.binary()), "sent_ms": times})
    pq.write_table(table, tmp_path / "events.parquet")

    df = spark.read.parquet(str(tmp_path / "events.parquet")).repartition(4)
    masked = maskflow_spark.mask_events(df, TEST_KEY.read_text())
    rows = sorted(masked.collect(), key=lambda r: r["n"])
    assert [r["n"] for r in rows] == list(range(len(bodies)))
    outcomes = as_outcomes(rows)

    unmasker = Transformer(keys=TEST_KEY.read_text())
    for v, out in zip(golden_vectors, outcomes):
        assert_vector(v, out, lambda m: unmasker.unmask_bytes(m).value)
    assert outcomes[len(golden_vectors):] == host_transform(gen)


def test_ndjson_job_writes_user_logins_and_rejections(spark, tmp_path):
    bodies = generated(3000, seed=17)
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "events.ndjson").write_bytes(b"\n".join(bodies) + b"\n")
    key = private_key(tmp_path, TEST_KEY.read_text())
    df = maskflow_spark.read_events(spark, str(tmp_path / "in"), "ndjson", SENT_MS).repartition(3)
    rows, rejected = maskflow_spark.write_outcomes(
        maskflow_spark.mask_events(df, key_file=key), str(tmp_path / "out")
    )
    expected = host_transform(bodies)
    got = pq.read_table(tmp_path / "out" / "user_logins")
    assert got.schema.field("app_version").type == pa.int32() and got.schema.field("create_date").type == pa.date32()
    want_rows = sorted((o["row"]["user_id"], o["row"]["masked_ip"], o["row"]["app_version"]) for o in expected if "row" in o)
    assert sorted((r["user_id"], r["masked_ip"], None if r["app_version"] is None else str(r["app_version"]))
                  for r in got.to_pylist()) == want_rows
    assert rows == len(want_rows) and rejected == len(expected) - len(want_rows) > 0
    got_rejected = pq.read_table(tmp_path / "out" / "user_logins_rejected").to_pylist()
    assert sorted(r["rejection_encrypted_body"] for r in got_rejected) == sorted(
        o["rejection"]["encrypted_body"] for o in expected if "rejection" in o
    )
    assert sorted(os.listdir(tmp_path)) == ["in", "maskflow.key", "out"], "no staging directory left"


def test_two_cores_are_faster_than_one(spark, tmp_path):
    bodies = generated(150_000, seed=19)
    table = pa.table({"body": pa.array(bodies, pa.binary()), "sent_ms": [SENT_MS] * len(bodies)})
    pq.write_table(table, tmp_path / "bench.parquet", row_group_size=10_000)
    keys = TEST_KEY.read_text()

    def run(session: SparkSession) -> float:
        df = session.read.parquet(str(tmp_path / "bench.parquet")).repartition(8)
        df = df.persist()
        assert df.count() == len(bodies)  # reading and shuffling outside the timing
        masked = maskflow_spark.mask_events(df, keys)
        start = time.perf_counter()
        count = masked.filter("rejection_reason IS NULL").count()
        elapsed = time.perf_counter() - start
        assert count > 0.9 * len(bodies)
        df.unpersist()
        return elapsed

    two = run(spark)
    spark.stop()
    one_session = spark_session(1)
    try:
        one = run(one_session)
    finally:
        one_session.stop()
    spark_session(2)  # the suite's session, back for the tests after this one
    figures = (
        f"spark: {len(bodies)} events, local[1] {len(bodies) / one:,.0f} rows/s, "
        f"local[2] {len(bodies) / two:,.0f} rows/s, speed-up {one / two:.2f}x"
    )
    print(figures)
    Path(os.environ.get("MASKFLOW_FIGURES", tmp_path / "figures.txt")).open("a").write(figures + "\n")
    assert one / two > 1.1, figures


def test_tasks_read_the_key_from_secrets_manager_themselves(spark, tmp_path, aws_env):
    """--key-source: only the source's name goes into the closure; each task reads the secret
    (here LocalStack's, through the environment the executors inherit) and masks as the host."""
    source = f"aws-secretsmanager:{put_secret(aws_env, TEST_KEY.read_text())}"
    bodies = generated(1000, seed=31)
    table = pa.table({"n": list(range(len(bodies))), "body": pa.array(bodies, pa.binary()),
                      "sent_ms": [SENT_MS] * len(bodies)})
    pq.write_table(table, tmp_path / "events.parquet")
    df = spark.read.parquet(str(tmp_path / "events.parquet")).repartition(2)
    rows = sorted(maskflow_spark.mask_events(df, key_source=source).collect(), key=lambda r: r["n"])
    assert as_outcomes(rows) == host_transform(bodies)


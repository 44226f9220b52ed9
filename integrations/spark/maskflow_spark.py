"""A maskflow backfill on Spark: historical login events masked by the same module as the host.

    spark-submit --py-files maskflow_spark.py maskflow_spark.py \\
        --input events/ --format ndjson --output masked/ --key-file /secrets/maskflow.key

Each task instantiates the module once (``maskflow.Transformer``) and makes one module call per
Arrow batch (``mapInArrow``). Output: Parquet datasets ``<output>/user_logins`` and
``<output>/user_logins_rejected`` (README.md: the same rows ``maskflow transform`` gives).
With ``--key-source aws-secretsmanager:SECRET_ID`` (or ``MASKFLOW_KEY_SOURCE``) only the source's
name travels: each task reads the key itself with the executors' IAM role (KMS-wrapped lines
unwrapped there too; ``maskflow[aws]`` on the cluster), so the key never passes through the
driver. Otherwise the key is read on the driver (a file, or ``MASKFLOW_KEY``) and travels to the
executors inside the task closure. Never in the job's arguments, its logs or its output.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

# The user_logins columns (transform/ABI.md's default mapping) as Arrow types, then the
# rejection's fields; a row has no rejection, a rejection no row.
ROW_TYPES = {
    "user_id": pa.string(),
    "device_type": pa.string(),
    "masked_ip": pa.string(),
    "masked_device_id": pa.string(),
    "locale": pa.string(),
    "app_version": pa.int32(),
    "create_date": pa.date32(),
}
REJECTION_FIELDS = ("reason", "message", "encrypted_body")


def _outcome_schema(passthrough: pa.Schema) -> pa.Schema:
    fields = list(passthrough) + [pa.field(n, t) for n, t in ROW_TYPES.items()]
    fields += [pa.field(f"rejection_{n}", pa.string()) for n in REJECTION_FIELDS]
    return pa.schema(fields)


def mask_events(df: DataFrame, keys: str | None = None, body: str = "body", sent_ms: str = "sent_ms",
                key_source: str | None = None) -> DataFrame:
    """``df`` with ``body`` (string or binary) and ``sent_ms`` (ms since the epoch) replaced by
    the user_logins columns and ``rejection_*``; every other column passes through. The key:
    ``keys`` (a key file's text, shipped in the closure) or ``key_source`` (a URI each task reads
    itself: ``aws-secretsmanager:SECRET_ID``, README "Key sources")."""
    if (keys is None) == (key_source is None):
        raise ValueError("give keys or key_source, one of them")
    df = df.withColumn(body, F.col(body).cast("binary")).withColumn(sent_ms, F.col(sent_ms).cast("long"))
    passthrough = [f for f in df.schema.fields if f.name not in (body, sent_ms)]
    arrow_passthrough = pa.schema(
        [pa.field(f.name, _arrow_type(f.dataType.simpleString())) for f in passthrough]
    )
    schema = _outcome_schema(arrow_passthrough)
    spark_schema = ", ".join(
        [f"`{f.name}` {f.dataType.simpleString()}" for f in passthrough]
        + [f"`{n}` {'int' if n == 'app_version' else 'date' if n == 'create_date' else 'string'}" for n in ROW_TYPES]
        + [f"`rejection_{n}` string" for n in REJECTION_FIELDS]
    )

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from maskflow import Transformer, key_source_text  # imported on the executor

        # Once per task: the key read (from its source, on the executor), compile, key set-up.
        transformer = Transformer(keys=keys if keys is not None else key_source_text(key_source))
        for batch in batches:
            bodies = batch.column(body).to_pylist()
            times = batch.column(sent_ms).to_pylist()
            outcomes = transformer.transform([b if b is not None else b"" for b in bodies],
                                             sent_timestamp_ms=[t if t is not None else -1 for t in times])
            columns = [batch.column(f.name) for f in arrow_passthrough]
            for name, typ in ROW_TYPES.items():
                values = [o.row[name] if o.row is not None else None for o in outcomes]
                if name == "app_version":
                    values = [None if v is None else int(v) for v in values]
                    columns.append(pa.array(values, typ))
                elif name == "create_date":
                    columns.append(pa.array(values, pa.string()).cast(pa.date32()))
                else:
                    columns.append(pa.array(values, typ))
            for n in REJECTION_FIELDS:
                columns.append(pa.array([o.rejection[n] if o.rejection else None for o in outcomes], pa.string()))
            yield pa.RecordBatch.from_arrays(columns, schema=schema)

    return df.mapInArrow(run, spark_schema)


def _arrow_type(spark_type: str) -> pa.DataType:
    return {"bigint": pa.int64(), "int": pa.int32(), "string": pa.string(), "binary": pa.binary(),
            "double": pa.float64(), "boolean": pa.bool_(), "date": pa.date32()}[spark_type]


def read_events(spark: SparkSession, path: str, fmt: str, sent_ms: int | None, sent_field: str | None) -> DataFrame:
    """NDJSON (one body per line, kept byte for byte) or Parquet (columns ``body``, ``sent_ms``)."""
    if fmt == "parquet":
        return spark.read.parquet(path)
    df = spark.read.text(path).withColumnRenamed("value", "body")
    if sent_field:
        sent = F.get_json_object("body", f"$.{sent_field}").cast("long")
    elif sent_ms is not None:
        sent = F.lit(sent_ms)
    else:
        raise SystemExit("maskflow-spark: give --sent-timestamp-ms or --sent-timestamp-field")
    return df.withColumn("sent_ms", sent)


def write_outcomes(masked: DataFrame, output: str) -> tuple[int, int]:
    """``<output>/user_logins`` and ``<output>/user_logins_rejected`` (Parquet, overwritten)."""
    masked = masked.persist()
    rows = masked.filter(F.col("rejection_reason").isNull()).drop(*[f"rejection_{n}" for n in REJECTION_FIELDS])
    rejected = masked.filter(F.col("rejection_reason").isNotNull()).drop(*ROW_TYPES)
    rows.write.mode("overwrite").parquet(f"{output}/user_logins")
    rejected.write.mode("overwrite").parquet(f"{output}/user_logins_rejected")
    counts = (rows.count(), rejected.count())
    masked.unpersist()
    return counts


def load_keys(key_file: str | None) -> str:
    """The key file's text, read on the driver (without --key-source)."""
    if key_file:
        path = Path(key_file)
        if path.stat().st_mode & 0o077:
            raise SystemExit(f"maskflow-spark: key file {path}: group or others can read it; chmod 600 {path}")
        return path.read_text()
    if "MASKFLOW_KEY" in os.environ:
        return os.environ["MASKFLOW_KEY"]
    raise SystemExit("maskflow-spark: no key: pass --key-file or set MASKFLOW_KEY (the key file's text)")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="maskflow-spark", description=__doc__.split("\n\n")[0])
    p.add_argument("--input", required=True)
    p.add_argument("--format", choices=["ndjson", "parquet"], default="ndjson")
    p.add_argument("--output", required=True)
    p.add_argument("--key-file", help="key file (mode 0600); else MASKFLOW_KEY holds its text")
    p.add_argument("--key-source", default=os.environ.get("MASKFLOW_KEY_SOURCE") or None,
                   help="read by each task instead: aws-secretsmanager:SECRET_ID[:STAGE] (env MASKFLOW_KEY_SOURCE)")
    p.add_argument("--sent-timestamp-ms", type=int)
    p.add_argument("--sent-timestamp-field")
    p.add_argument("--partitions", type=int, help="repartition the input (default: as read)")
    args = p.parse_args(argv)
    if args.key_source and args.key_file:
        raise SystemExit("maskflow-spark: both --key-source and --key-file: keep one")
    keys = None if args.key_source else load_keys(args.key_file)
    spark = SparkSession.builder.appName("maskflow-backfill").getOrCreate()
    df = read_events(spark, args.input, args.format, args.sent_timestamp_ms, args.sent_timestamp_field)
    if args.partitions:
        df = df.repartition(args.partitions)
    rows, rejected = write_outcomes(mask_events(df, keys, key_source=args.key_source), args.output)
    print(f"maskflow-spark: {rows} rows, {rejected} rejected -> {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A maskflow backfill on Spark: historical login events masked by the same module as the host.

    spark-submit maskflow_spark.py --input events/ --output masked/ --key-file /secrets/maskflow.key

Each task instantiates the module once (``maskflow.Transformer``) and makes one module call per
Arrow batch (``mapInArrow``). Output: Parquet datasets ``<output>/user_logins`` and
``<output>/user_logins_rejected`` (README.md: the same rows ``maskflow transform`` gives),
published together once both are complete. With ``--key-source aws-secretsmanager:SECRET_ID``
(or ``MASKFLOW_KEY_SOURCE``) only the source's name travels: each task reads the key itself with
the executors' IAM role (KMS-wrapped lines unwrapped there too; ``maskflow[aws]`` on the
cluster), so the key never passes through the driver. Otherwise the key is read on the driver (a
file, or ``MASKFLOW_KEY``) and travels to the executors inside the task closure. Never in the
job's arguments, its logs or its output.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pyarrow as pa
from pyspark import cloudpickle
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from maskflow import ConfigError, MaskflowError, Reason, Rejection, Row, Transformer, read_key_file

# The user_logins columns (transform/ABI.md's default mapping), as Arrow and Spark types, then
# the rejection's fields; a row has no rejection, a rejection no row.
ROW_TYPES = {
    "user_id": (pa.string(), T.StringType()),
    "device_type": (pa.string(), T.StringType()),
    "masked_ip": (pa.string(), T.StringType()),
    "masked_device_id": (pa.string(), T.StringType()),
    "locale": (pa.string(), T.StringType()),
    "app_version": (pa.int32(), T.IntegerType()),
    "create_date": (pa.date32(), T.DateType()),
}
REJECTION_FIELDS = ("reason", "message", "encrypted_body")
OUTPUT_TABLES = ("user_logins", "user_logins_rejected")

# ---- sent times: as `maskflow transform --sent-timestamp-field` reads them ---------------------

# Below this an integer could be seconds (1e11 s is the year 5138) or ms (1e11 ms is 1973):
# refused rather than guessed.
MIN_FIELD_MS = 100_000_000_000
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:[Zz]|([+-])(\d{2}):(\d{2}))"
)
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MS = timedelta(milliseconds=1)


class Unreadable(ValueError):
    """A sent time that cannot be read; the message says why, never the value."""


def rfc3339_ms(text: str) -> int:
    """ms since the epoch of an RFC 3339 date-time with a zone (`Z` or `+hh:mm`); a fraction
    beyond ms is cut, as the CLI cuts it."""
    m = _RFC3339.fullmatch(text)
    if m is None:
        raise Unreadable("a string that is not an RFC 3339 date-time with a zone")
    year, month, day, hour, minute, second, fraction, sign, zh, zm = m.groups()
    try:
        zone = timezone.utc if sign is None else timezone((1 if sign == "+" else -1) * timedelta(hours=int(zh), minutes=int(zm)))
        when = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), tzinfo=zone)
    except ValueError:
        raise Unreadable("an RFC 3339 date-time out of range (a month 13, a second 60, ...)") from None
    return (when - _EPOCH) // _MS + int((fraction or "0")[:3].ljust(3, "0"))


def field_ms(value: object) -> int:
    """A body field's sent time: ms since the epoch as an integer of at least 1e11, or an RFC
    3339 string with a zone."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise Unreadable(f"a JSON {_json_kind(value)}, not ms since the epoch (an integer) or an RFC 3339 string")
    if isinstance(value, str):
        return rfc3339_ms(value)
    if value < MIN_FIELD_MS:
        raise Unreadable("an integer below 1e11: seconds or ms? (ms since the epoch is at least 1e11 after 1973-03-03)")
    return value


def _json_kind(value: object) -> str:
    return {bool: "boolean", float: "number with a fraction or exponent", list: "array", dict: "object"}.get(
        type(value), type(value).__name__
    )


def body_field(body: bytes, field: str) -> object:
    """The top-level field of a JSON object body, or ``None`` where it is absent, ``null``, or
    the body is not a JSON object (the module judges the body; the fallback time applies)."""
    if field.encode() not in body and b"\\" not in body:
        return None  # cheap: the field's name cannot be in the body (it may be escaped)
    try:
        document = json.loads(body)
    except ValueError:
        return None
    return document.get(field) if isinstance(document, dict) else None


# ---- the job ----------------------------------------------------------------------------------


def load_keys(key_file: str | os.PathLike[str] | None = None) -> str:
    """The key file's text: from ``key_file`` (the package's reader: mode 0600, UTF-8) or
    ``MASKFLOW_KEY``. Raises ``maskflow.ConfigError``."""
    if key_file is not None:
        return read_key_file(key_file)
    text = os.environ.get("MASKFLOW_KEY")
    if text:
        return text
    raise ConfigError("no key: pass --key-file (mode 0600) or set MASKFLOW_KEY to the key file's text")


def mask_events(
    df: DataFrame,
    keys: str | None = None,
    body: str = "body",
    sent_ms: str = "sent_ms",
    sent_field: str | None = None,
    *,
    key_file: str | os.PathLike[str] | None = None,
    key_source: str | None = None,
) -> DataFrame:
    """``df`` with ``body`` (string or binary) and ``sent_ms`` replaced by the user_logins columns
    (``app_version`` int, ``create_date`` date) and ``rejection_*``; every other column passes
    through, whatever its type.

    The sent time of each event: its body's top-level ``sent_field`` where given and present
    (ms since the epoch of at least 1e11, or RFC 3339 with a zone; anything else is an
    ``invalid_timestamp`` rejection naming the field), else the ``sent_ms`` column: an integer
    (ms since the epoch, as the ABI takes it), a timestamp, or an RFC 3339 string.

    The keys, one of: ``keys`` (a key file's text), ``key_file`` (its path, mode 0600), or
    ``key_source`` (a URI each task reads itself, ``aws-secretsmanager:SECRET_ID``: README "Key
    sources"; the key never passes through the driver). Raises on the driver, before any job:
    ``maskflow.ConfigError`` / ``KeyFileError`` for keys given as text or file, ``ValueError``
    for columns that cannot be used.
    """
    if sum(k is not None for k in (keys, key_file, key_source)) != 1:
        raise TypeError("give one of keys= (a key file's text), key_file= (its path) or key_source= (a URI)")
    if key_file is not None:
        keys = load_keys(key_file)
    if keys is not None:
        Transformer(keys=keys)  # the keys refused here, on the driver, with the line and rule
    # Executors need only the maskflow package: this file's functions travel with the task.
    if __name__ != "__main__":
        cloudpickle.register_pickle_by_value(sys.modules[__name__])
    names = df.columns
    if body not in names:
        raise ValueError(f"no body column `{body}` (the columns are {names})")
    if not isinstance(df.schema[body].dataType, (T.StringType, T.BinaryType)):
        raise ValueError(f"the body column `{body}` is {df.schema[body].dataType.simpleString()}, not string or binary")
    taken = [n for n in names if n in ROW_TYPES or n in {f"rejection_{f}" for f in REJECTION_FIELDS}]
    if taken:
        raise ValueError(f"input columns {taken} would be overwritten by the outcome's: rename them")
    sent_kind = None
    if sent_ms in names:
        df, sent_kind = _sent_column(df, sent_ms)
    elif sent_field is None:
        raise ValueError(f"no sent time: no `{sent_ms}` column and no sent_field")
    df = df.withColumn(body, F.col(body).cast("binary"))
    passthrough = [f for f in df.schema.fields if f.name not in (body, sent_ms)]
    spark_schema = T.StructType(
        passthrough
        + [T.StructField(n, spark_type) for n, (_, spark_type) in ROW_TYPES.items()]
        + [T.StructField(f"rejection_{n}", T.StringType()) for n in REJECTION_FIELDS]
    )
    out_names = [f.name for f in spark_schema.fields]

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from maskflow import Transformer, key_source_text  # imported on the executor

        # Once per task: the key read (from its source, on the executor), compile, key set-up.
        transformer = Transformer(keys=keys if keys is not None else key_source_text(key_source))
        for batch in batches:
            outcomes = _mask_batch(transformer, batch, body, sent_ms if sent_kind else None, sent_kind, sent_field)
            rows = [o.columns if isinstance(o, Row) else None for o in outcomes]
            columns = [batch.column(f.name) for f in passthrough]
            for name, (arrow_type, _) in ROW_TYPES.items():
                columns.append(pa.array([None if r is None else r[name] for r in rows], arrow_type))
            for field in REJECTION_FIELDS:
                values = [str(getattr(o, field)) if isinstance(o, Rejection) else None for o in outcomes]
                columns.append(pa.array(values, pa.string()))
            yield pa.RecordBatch.from_arrays(columns, names=out_names)

    return df.mapInArrow(run, spark_schema)


def _sent_column(df: DataFrame, name: str) -> tuple[DataFrame, str]:
    """The sent-time column as int64 ms (integers as they are, timestamps converted) or as
    strings (RFC 3339, read per row); any other type is refused."""
    kind = df.schema[name].dataType
    if isinstance(kind, (T.ByteType, T.ShortType, T.IntegerType, T.LongType)):
        return df.withColumn(name, F.col(name).cast("long")), "ms"
    if isinstance(kind, T.TimestampType):
        return df.withColumn(name, F.unix_millis(F.col(name))), "ms"
    if isinstance(kind, T.StringType):
        return df, "rfc3339"
    hint = " (no zone: convert it with to_utc_timestamp)" if isinstance(kind, T.TimestampNTZType) else ""
    raise ValueError(
        f"the sent-time column `{name}` is {kind.simpleString()}{hint}: give ms since the epoch "
        "(an integer), a timestamp, or RFC 3339 strings"
    )


def _mask_batch(transformer, batch: pa.RecordBatch, body: str, sent_ms: str | None, sent_kind: str | None, sent_field: str | None):
    """The outcomes of one batch; a time that cannot be read is the module's
    ``invalid_timestamp`` rejection (the module is given -1), with a message naming the field."""
    bodies = [b if b is not None else b"" for b in batch.column(body).to_pylist()]
    fallback = batch.column(sent_ms).to_pylist() if sent_ms else [None] * len(bodies)
    times, unreadable = [], {}
    for i, (b, column_value) in enumerate(zip(bodies, fallback)):
        value = body_field(b, sent_field) if sent_field else None
        try:
            if value is not None:
                source = f"field `{sent_field}`"
                times.append(field_ms(value))
            elif column_value is not None:
                source = f"column `{sent_ms}`"
                times.append(rfc3339_ms(column_value) if sent_kind == "rfc3339" else column_value)
            else:
                source = "no sent time"
                absent = [f"field `{sent_field}` absent or null"] if sent_field else []
                raise Unreadable(", ".join(absent + ([f"column `{sent_ms}` null"] if sent_ms else [])))
        except Unreadable as e:
            unreadable[i] = f"{source}: {e}"
            times.append(-1)
    outcomes = transformer.transform(bodies, times)
    for i, message in unreadable.items():
        o = outcomes[i]
        if isinstance(o, Rejection) and o.reason is Reason.INVALID_TIMESTAMP:
            outcomes[i] = Rejection(o.reason, message, o.encrypted_body)
    return outcomes


def read_events(spark: SparkSession, path: str, fmt: str = "ndjson", sent_ms: int | None = None) -> DataFrame:
    """NDJSON (one body per line, kept byte for byte) or Parquet (a ``body`` column, and a
    ``sent_ms`` column or not). Without a ``sent_ms`` column each event gets ``sent_ms`` (the
    CLI's ``--sent-timestamp-ms``) or, without it, its file's modification time (the CLI's
    arrival time)."""
    if fmt == "parquet":
        df = spark.read.parquet(path)
        if "sent_ms" in df.columns:
            if sent_ms is not None:
                raise ValueError("the input has a sent_ms column: --sent-timestamp-ms is only for inputs without one")
            return df
    elif fmt == "ndjson":
        df = spark.read.text(path).select(F.col("value").cast("binary").alias("body"), "_metadata")
    else:
        raise ValueError(f"unknown input format {fmt!r} (ndjson or parquet)")
    default = F.lit(sent_ms).cast("long") if sent_ms is not None else F.unix_millis(F.col("_metadata.file_modification_time"))
    return df.withColumn("sent_ms", default).drop("_metadata")


def check_output(spark: SparkSession, output: str) -> None:
    """Refuses an output directory holding anything but a previous run's datasets: it is
    replaced as a whole."""
    fs, path = _filesystem(spark, output)
    if not fs.exists(path):
        return
    if not fs.getFileStatus(path).isDirectory():
        raise ValueError(f"--output {output} is a file; it must be a directory maskflow-spark may replace")
    extra = [s.getPath().getName() for s in fs.listStatus(path) if s.getPath().getName() not in OUTPUT_TABLES]
    if extra:
        raise ValueError(f"--output {output} holds {sorted(extra)[:5]}: it is replaced as a whole, so it may only hold {OUTPUT_TABLES}")


def write_outcomes(masked: DataFrame, output: str) -> tuple[int, int]:
    """``<output>/user_logins`` and ``<output>/user_logins_rejected`` (Parquet), published
    together: both are written beside ``<output>`` (``<output>.incomplete-<run>``), then renamed
    into its place. A failed job leaves ``<output>`` as it was (a previous run's, or absent)."""
    spark = masked.sparkSession
    check_output(spark, output)
    fs, final = _filesystem(spark, output)
    jvm = spark._jvm
    run = uuid.uuid4().hex[:12]
    base = output.rstrip("/")
    staging = jvm.org.apache.hadoop.fs.Path(f"{base}.incomplete-{run}")
    masked = masked.persist()
    try:
        rows = masked.filter(F.col("rejection_reason").isNull()).drop(*[f"rejection_{n}" for n in REJECTION_FIELDS])
        rejected = masked.filter(F.col("rejection_reason").isNotNull()).drop(*ROW_TYPES)
        rows.write.parquet(f"{staging}/user_logins")
        rejected.write.parquet(f"{staging}/user_logins_rejected")
        counts = (rows.count(), rejected.count())
        replaced = jvm.org.apache.hadoop.fs.Path(f"{base}.replaced-{run}")
        if fs.exists(final) and not fs.rename(final, replaced):
            raise OSError(f"cannot move the previous {output} aside")
        if not fs.rename(staging, final):
            fs.rename(replaced, final)
            raise OSError(f"cannot move the new result into {output}")
        fs.delete(replaced, True)
        return counts
    finally:
        fs.delete(staging, True)  # nothing after a success; a failed run's partial files
        masked.unpersist()


def _filesystem(spark: SparkSession, path: str):
    hadoop_path = spark._jvm.org.apache.hadoop.fs.Path(path.rstrip("/"))
    return hadoop_path.getFileSystem(spark._jsc.hadoopConfiguration()), hadoop_path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="maskflow-spark", description=__doc__.split("\n\n")[0])
    p.add_argument("--input", required=True)
    p.add_argument("--format", choices=["ndjson", "parquet"], default="ndjson")
    p.add_argument("--output", required=True, help="a directory, replaced as a whole when the job succeeds")
    p.add_argument("--key-file", help="key file (mode 0600); else MASKFLOW_KEY holds its text")
    p.add_argument("--sent-timestamp-ms", type=int, help="the sent time of events without one (default: the file's modification time)")
    p.add_argument("--sent-timestamp-field", help="a top-level body field holding the sent time (ms since the epoch, or RFC 3339)")
    p.add_argument("--key-source", default=os.environ.get("MASKFLOW_KEY_SOURCE") or None,
                   help="read by each task instead: aws-secretsmanager:SECRET_ID[:STAGE] (env MASKFLOW_KEY_SOURCE)")
    p.add_argument("--partitions", type=int, help="repartition the input (default: as read)")
    args = p.parse_args(argv)
    try:
        if args.key_source and args.key_file:
            raise ConfigError("both --key-source and --key-file: keep one")
        keys = None if args.key_source else load_keys(args.key_file)
        if keys is not None:
            Transformer(keys=keys)  # before Spark starts: a bad key costs no JVM
    except (MaskflowError, ValueError) as e:
        print(f"maskflow-spark: {e}", file=sys.stderr)
        return 3
    spark = SparkSession.builder.appName("maskflow-backfill").getOrCreate()
    try:
        df = read_events(spark, args.input, args.format, args.sent_timestamp_ms)
        if args.partitions:
            df = df.repartition(args.partitions)
        masked = mask_events(df, keys, sent_field=args.sent_timestamp_field, key_source=args.key_source)
        check_output(spark, args.output)
    except (MaskflowError, ValueError) as e:
        print(f"maskflow-spark: {e}", file=sys.stderr)
        return 3
    try:
        rows, rejected = write_outcomes(masked, args.output)
    except Exception as e:  # the job failed: Spark has logged the cause
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(f"maskflow-spark: the job failed, {args.output} is as it was: {first}", file=sys.stderr)
        return 1
    print(f"maskflow-spark: {rows} rows, {rejected} rejected -> {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

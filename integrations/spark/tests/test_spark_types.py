"""Every column type Spark can hand to Python passes through mask_events unchanged."""

from __future__ import annotations

import maskflow_spark
from testkit import TEST_KEY

COLUMNS = """
    CAST('{"user_id": "u", "ip": "10.0.0.1"}' AS BINARY) AS body, 1700000000000L AS sent_ms,
    true AS boolean_, CAST(-1 AS TINYINT) AS tinyint_, CAST(-2 AS SMALLINT) AS smallint_, 3 AS int_,
    9007199254740993L AS bigint_, CAST(1.5 AS FLOAT) AS float_, 2.5D AS double_,
    CAST('12345678901234567890.123456789012345678' AS DECIMAL(38, 18)) AS decimal_,
    CAST('1.5' AS DECIMAL(5, 1)) AS small_decimal, 'text' AS string_, X'00FF10' AS binary_,
    DATE'2024-02-29' AS date_, TIMESTAMP'2024-02-29 12:34:56.789123 UTC' AS timestamp_,
    TIMESTAMP_NTZ'2024-02-29 12:34:56.789123' AS timestamp_ntz_,
    INTERVAL '1 02:03:04.5' DAY TO SECOND AS day_time_interval,
    array(1, NULL, 3) AS array_, map('a', 1, 'b', NULL) AS map_,
    named_struct('x', 1, 'y', 'z', 'when', DATE'2020-01-01') AS struct_,
    array(named_struct('k', map('m', array(1.5D)))) AS nested,
    CAST(NULL AS STRING) AS null_string, CAST(NULL AS DECIMAL(10, 2)) AS null_decimal
"""


def test_every_column_type_passes_through(spark):
    df = spark.sql(f"SELECT {COLUMNS}")
    masked = maskflow_spark.mask_events(df, TEST_KEY.read_text())
    passthrough = [c for c in df.columns if c not in ("body", "sent_ms")]
    assert [f for f in masked.schema.fields if f.name in passthrough] == [df.schema[c] for c in passthrough]
    (got,) = masked.collect()
    (want,) = df.select(*passthrough).collect()
    assert [got[c] for c in passthrough] == list(want)
    assert got["user_id"] == "u" and got["masked_ip"].startswith("k1.") and got["rejection_reason"] is None

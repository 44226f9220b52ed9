"""The Spark suite's session (local mode) and helpers shared by its files."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import maskflow_spark  # noqa: E402


def spark_session(cores: int) -> SparkSession:
    # Python workers run this interpreter (the venv with pyarrow and maskflow), not PATH's python3.
    os.environ["PYSPARK_PYTHON"] = sys.executable
    return (
        SparkSession.builder.master(f"local[{cores}]")
        .appName(f"maskflow-test-{cores}")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", str(2 * cores))
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", "2000")
        .config("spark.driver.memory", "1g")
        .getOrCreate()
    )


@pytest.fixture
def spark(aws_env) -> SparkSession:
    """The running local[2] session (a test that swaps it, as the speed-up test does, leaves a
    local[2] one behind). After aws_env: the JVM, and the Python workers it starts, inherit
    LocalStack's variables (the key source test's tasks read the secret themselves)."""
    return SparkSession.getActiveSession() or spark_session(2)


@pytest.fixture(scope="session", autouse=True)
def _stop_spark_at_the_end():
    yield
    session = SparkSession.getActiveSession()
    if session is not None:
        session.stop()


def as_outcomes(rows) -> list[dict]:
    """Spark rows as outcome JSON (the golden vectors' shape: every value as the module's text)."""
    out = []
    for r in rows:
        if r["rejection_reason"] is not None:
            out.append({"rejection": {n: r[f"rejection_{n}"] for n in maskflow_spark.REJECTION_FIELDS}})
        else:
            row = {n: r[n] for n in maskflow_spark.ROW_TYPES}
            row["app_version"] = None if row["app_version"] is None else str(row["app_version"])
            row["create_date"] = None if row["create_date"] is None else row["create_date"].isoformat()
            out.append({"row": row})
    return out


def private_key(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    path = tmp_path / "maskflow.key"
    path.write_text(text)
    path.chmod(mode)
    return path

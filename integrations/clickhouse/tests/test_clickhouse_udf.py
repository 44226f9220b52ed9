"""The shipped module as a ClickHouse WebAssembly UDF, in chDB (ClickHouse 26.9 in-process).

chDB's embedded server is one per process and fixed by its first connection: every test here
shares the one session below, and this file runs in its own pytest process (integrations/test).
"""

from __future__ import annotations

import base64
import json
import os
import re
import resource
import subprocess
import time
from pathlib import Path

import pytest
from chdb.session import Session

from testkit import (
    REPO,
    SENT_MS,
    TEST_KEY,
    assert_vector,
    generated,
    host_transform,
    maskflow_bin,
    put_secret,
    vector_body,
)

HERE = Path(__file__).resolve().parent.parent
MODULE = REPO / "host" / "module" / "maskflow_transform.wasm"
# chDB has no query_log unless its config asks for one: the test needs it to look for the key.
CONFIG_XML = """<clickhouse>
  <query_log><database>system</database><table>query_log</table>
    <flush_interval_milliseconds>500</flush_interval_milliseconds></query_log>
</clickhouse>
"""


def statements(sql: str) -> list[str]:
    sql = "\n".join(l for l in sql.splitlines() if not l.lstrip().startswith("--"))
    return [s.strip() for s in re.split(r";\s*\n", sql) if s.strip()]


@pytest.fixture(scope="module")
def ch(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("chdb")
    (tmp / "config.xml").write_text(CONFIG_XML)
    key = tmp / "maskflow.key"
    key.write_text(TEST_KEY.read_text())
    key.chmod(0o600)
    session = Session(
        f"{tmp / 'db'}?allow_experimental_webassembly_udf=1&webassembly_udf_max_fuel=0"
        f"&config-file={tmp / 'config.xml'}"
    )
    sql = (HERE / "maskflow.sql").read_text()
    sql = sql.replace("'maskflow_transform.wasm'", f"'{MODULE}'").replace("'maskflow.key'", f"'{key}'")
    for statement in statements(sql):
        session.query(statement)
    yield session, tmp
    session.close()


def q(ch, sql: str) -> list[list]:
    """Rows of a query as JSON values."""
    session, _ = ch
    out = session.query(sql, "JSONCompactEachRow").bytes()
    return [json.loads(line) for line in out.decode().splitlines()]


def udf_outcomes(ch, bodies: list[bytes], sent_ms: int | list[int]) -> list[dict]:
    """The UDF over `bodies`, through a file (no value ever in the query's text)."""
    session, tmp = ch
    times = sent_ms if isinstance(sent_ms, list) else [sent_ms] * len(bodies)
    # RowBinary input file: body String, sent_ms Int64, n UInt32 (to restore the order).
    path = tmp / "udf-input.bin"
    with path.open("wb") as f:
        for n, (body, t) in enumerate(zip(bodies, times)):
            f.write(_leb128(len(body)) + body + t.to_bytes(8, "little", signed=True) + n.to_bytes(4, "little"))
    rows = q(
        ch,
        f"SELECT n, maskflow(body, sent_ms, c.config) FROM file('{path}', 'RowBinary', "
        "'body String, sent_ms Int64, n UInt32') AS e CROSS JOIN maskflow_config AS c ORDER BY n",
    )
    assert [r[0] for r in rows] == list(range(len(bodies)))
    return [json.loads(r[1]) for r in rows]


def _leb128(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _unmask(mask: str) -> bytes:
    key = Path(os.environ.get("TMPDIR", "/tmp")) / f"maskflow-ch-{os.getpid()}.key"
    key.write_text(TEST_KEY.read_text())
    key.chmod(0o600)
    try:
        out = subprocess.run(
            [maskflow_bin(), "unmask", "--key-file", str(key)],
            input=mask.encode() + b"\n",
            check=True,
            capture_output=True,
        ).stdout
    finally:
        key.unlink()
    return out.rstrip(b"\n")


def test_config_is_one_row_and_usable(ch):
    assert q(ch, "SELECT count(), maskflow_check(any(config)) FROM maskflow_config") == [[1, ""]]
    assert q(ch, "SELECT maskflow_check('{\"keys\": []}')")[0][0].startswith("no key given")


def test_every_golden_vector(ch, golden_vectors):
    bodies = [vector_body(v) for v in golden_vectors]
    outcomes = udf_outcomes(ch, bodies, [v["sent_timestamp_ms"] for v in golden_vectors])
    for v, out in zip(golden_vectors, outcomes):
        assert_vector(v, out, _unmask)
    reasons = {o["rejection"]["reason"] for o in outcomes if "rejection" in o}
    assert {"body_too_large", "body_not_utf8"} <= reasons  # rejections, not query errors


def test_generated_events_equal_the_host(ch):
    bodies = generated(5000)
    assert udf_outcomes(ch, bodies, SENT_MS) == host_transform(bodies)


def test_materialized_view_fills_rows_and_rejections_and_the_key_stays_out_of_the_logs(ch):
    session, tmp = ch
    bodies = generated(2000, seed=3) + [b"\xff\xfe not utf-8", b'{"user_id": "u", "x": "' + b" " * 262144 + b'"}']
    events = tmp / "events.ndjson"
    events.write_bytes(b"\n".join(bodies) + b"\n")
    expected = host_transform(bodies)
    session.query(
        "INSERT INTO login_events_raw SELECT line, toInt64(1700000000000) "
        f"FROM file('{events}', 'LineAsString')"
    )
    rows = q(ch, "SELECT user_id, device_type, masked_ip, masked_device_id, locale, app_version, "
                 "toString(create_date) FROM user_logins ORDER BY ALL")
    want_rows = sorted(
        [r["user_id"], r["device_type"], r["masked_ip"], r["masked_device_id"], r["locale"],
         None if r["app_version"] is None else int(r["app_version"]), r["create_date"]]
        for o in expected if (r := o.get("row"))
    )
    assert sorted(rows, key=json.dumps) == sorted(want_rows, key=json.dumps)
    rejected = q(ch, "SELECT reason, message, encrypted_body FROM user_logins_rejected ORDER BY ALL")
    want_rejected = sorted([r["reason"], r["message"], r["encrypted_body"]] for o in expected if (r := o.get("rejection")))
    assert rejected == want_rejected
    assert {"body_not_utf8", "body_too_large"} <= {r[0] for r in rejected}
    assert len(rows) + len(rejected) == len(bodies)

    # The key: not in any logged query (the log is on: the insert above is in it), nor an error.
    session.query("SYSTEM FLUSH LOGS")
    secret = TEST_KEY.read_text().split(":", 1)[1].strip()
    logged = q(ch, "SELECT count() FROM system.query_log WHERE query LIKE '%login_events_raw%'")[0][0]
    assert logged > 0
    leaks = q(
        ch,
        f"SELECT count() FROM system.query_log WHERE position(query, '{secret[:24]}') > 0 "
        f"OR position(exception, '{secret[:24]}') > 0 OR position(formatted_query, '{secret[:24]}') > 0",
    )[0][0]
    assert leaks == 0


def test_a_refused_config_fails_the_query_without_the_key(ch):
    session, tmp = ch
    secret = base64.b64encode(bytes(range(100, 132))).decode()  # 32 bytes: refused
    bad = tmp / "bad-config.json"
    bad.write_text(json.dumps({"keys": [{"id": "k1", "key": secret}]}))
    session.query("CREATE TABLE bad_config (config String) ENGINE = Memory")
    session.query(f"INSERT INTO bad_config SELECT raw_blob FROM file('{bad}', 'RawBlob')")
    assert "64 bytes" in q(ch, "SELECT maskflow_check(config) FROM bad_config")[0][0]
    with pytest.raises(Exception) as refused:
        session.query("SELECT maskflow('{}', 1, config) FROM bad_config")
    assert "maskflow" in str(refused.value) and secret[:16] not in str(refused.value)


def test_udf_throughput_on_one_core_against_the_host(ch, record_property):
    session, tmp = ch
    bodies = generated(100_000, seed=5)
    events = tmp / "bench.ndjson"
    events.write_bytes(b"\n".join(bodies) + b"\n")
    sql = (
        "SELECT count(), countIf(startsWith(o, '{\"row\"')) FROM (SELECT maskflow(line, toInt64(1700000000000), c.config) AS o "
        f"FROM file('{events}', 'LineAsString') AS e CROSS JOIN maskflow_config AS c) "
        "SETTINGS max_threads = 1"
    )
    q(ch, sql)  # warm: instances compiled
    start = time.perf_counter()
    (count, ok), = q(ch, sql)
    udf_s = time.perf_counter() - start
    assert count == len(bodies) and ok > 0.9 * count

    key = tmp / "maskflow.key"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    with events.open("rb") as stdin:
        subprocess.run(
            [maskflow_bin(), "transform", "--key-file", str(key), "--sent-timestamp-ms", str(SENT_MS), "--batch-size", "1000"],
            stdin=stdin, stdout=subprocess.DEVNULL, check=True,
            env={**os.environ, "MASKFLOW_MODULE_CACHE": "off"},
        )
    host_s = time.perf_counter() - start
    udf_rate, host_rate = count / udf_s, count / host_s
    figures = f"clickhouse UDF: {udf_rate:,.0f} rows/s on one core; maskflow transform: {host_rate:,.0f} rows/s ({udf_rate / host_rate:.2f}x)"
    print(figures)
    record_property("figures", figures)
    (Path(os.environ.get("MASKFLOW_FIGURES", tmp / "figures.txt"))).open("a").write(figures + "\n")
    assert udf_rate > 0.2 * host_rate, figures


def test_maskflow_config_filled_from_secrets_manager_masks_as_the_key_file(ch, aws_env):
    """README "The key from AWS Secrets Manager": the config row made by the Python package from a
    secret (JSONEachRow data, never query text) and swapped in with EXCHANGE TABLES is the one
    maskflow.sql makes from the key file, and the UDF with it gives `maskflow transform`'s rows."""
    from maskflow import key_source_text, parse_key_file

    session, tmp = ch
    [[from_file]] = q(ch, "SELECT config FROM maskflow_config")
    source = f"aws-secretsmanager:{put_secret(aws_env, TEST_KEY.read_text())}"
    config = json.dumps({"keys": parse_key_file(key_source_text(source)), "cache_size": 4096})
    data = tmp / "maskflow-config.jsonl"
    data.write_text(json.dumps({"config": config}) + "\n")
    session.query("CREATE TABLE maskflow_config_next AS maskflow_config")
    session.query(f"INSERT INTO maskflow_config_next SELECT config FROM file('{data}', 'JSONEachRow', 'config String')")
    data.unlink()
    session.query("EXCHANGE TABLES maskflow_config AND maskflow_config_next")
    session.query("DROP TABLE maskflow_config_next")
    [[count, from_secret]] = q(ch, "SELECT count(), any(config) FROM maskflow_config")
    assert count == 1 and json.loads(from_secret) == json.loads(from_file)
    bodies = generated(500, seed=29)
    assert udf_outcomes(ch, bodies, SENT_MS) == host_transform(bodies)

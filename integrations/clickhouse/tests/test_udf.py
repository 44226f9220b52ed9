"""The UDFs on their own: the typed and the JSON function against the golden vectors and
`maskflow transform`, and the typed function's bytes against what ClickHouse itself writes."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from chkit import COLUMNS, TYPED, call_export, q, rowbinary_events, udf_outcomes
from testkit import SENT_MS, TEST_KEY, assert_vector, generated, host_transform, maskflow_bin, vector_body


def unmask(mask: str) -> bytes:
    key = Path(os.environ.get("TMPDIR", "/tmp")) / f"maskflow-ch-{os.getpid()}.key"
    key.write_text(TEST_KEY.read_text())
    key.chmod(0o600)
    try:
        return subprocess.run([maskflow_bin(), "unmask", "--key-file", str(key)], input=mask.encode() + b"\n",
                              check=True, capture_output=True).stdout.rstrip(b"\n")
    finally:
        key.unlink()


def test_the_config_table_holds_one_usable_config(ch):
    assert q(ch, "SELECT count(), any(refused), maskflow_check(any(config)) FROM maskflow_config") == [[1, "", ""]]
    assert q(ch, "SELECT maskflow_check('{\"keys\": []}')")[0][0].startswith("no key given")


def test_every_golden_vector(ch, tmp_path, golden_vectors):
    bodies = [vector_body(v) for v in golden_vectors]
    typed, batched, as_json = udf_outcomes(ch, tmp_path, bodies, [v["sent_timestamp_ms"] for v in golden_vectors])
    for v, t, b, j in zip(golden_vectors, typed, batched, as_json, strict=True):
        assert_vector(v, t, unmask)
        assert_vector(v, b, unmask)
        assert_vector(v, j, unmask)
    reasons = {o["rejection"]["reason"] for o in typed if "rejection" in o}
    assert {"body_too_large", "body_not_utf8", "invalid_timestamp"} <= reasons  # rejections, not query errors


def test_generated_events_equal_the_host(ch, tmp_path):
    bodies = generated(5000)
    expected = host_transform(bodies)
    typed, batched, as_json = udf_outcomes(ch, tmp_path, bodies, [SENT_MS] * len(bodies))
    assert typed == expected
    assert batched == expected
    assert as_json == expected
    assert sum("rejection" in o for o in expected) > 20  # the generator's malformed 2%


def expected_file(tmp_path: Path, outcomes: list[dict]) -> str:
    """The outcomes as a file() source of typed columns, with `n` (their order)."""
    lines = []
    for n, outcome in enumerate(outcomes):
        row, rejection = outcome.get("row") or {}, outcome.get("rejection") or {}
        record = {"n": n, **{c: row.get(c) for c in COLUMNS}, **{k: rejection.get(k) for k in ("reason", "message", "encrypted_body")}}
        if record["app_version"] is not None:
            record["app_version"] = int(record["app_version"])
        lines.append(json.dumps(record))
    path = tmp_path / "expected.ndjson"
    path.write_text("\n".join(lines) + "\n")
    schema = "n UInt32, " + ", ".join(f"{c} Nullable({'Int32' if c == 'app_version' else 'Date32' if c == 'create_date' else 'String'})"
                                      for c in COLUMNS) + ", reason Nullable(String), message Nullable(String), encrypted_body Nullable(String)"
    return f"file('{path}', 'JSONEachRow', '{schema}')"


FIELDS = ", ".join(COLUMNS + ["reason", "message", "encrypted_body"])


@pytest.fixture
def bytes_case(ch, tmp_path, golden_vectors):
    """Golden vectors (one line each) and generated events, with `maskflow transform`'s outcomes."""
    one_line = [v for v in golden_vectors if b"\n" not in vector_body(v)]
    bodies = [vector_body(v) for v in one_line] + generated(2000, seed=11)
    expected = host_transform(bodies)
    assert {"row", "rejection"} == {next(iter(o)) for o in expected}
    events = tmp_path / "events.bin"
    events.write_bytes(rowbinary_events(bodies, [SENT_MS] * len(bodies)))
    source = f"file('{events}', 'RowBinary', 'body String, sent_ms Int64, n UInt32') AS e CROSS JOIN maskflow_config AS c"
    return bodies, source, expected_file(tmp_path, expected)


def test_typed_bytes_are_clickhouses_own_rowbinary(ch, bytes_case):
    """maskflow_typed's bytes for its declared Tuple, against ClickHouse's serialisation of the
    host's outcomes (`maskflow transform`) cast to that Tuple: rows, rejections, NULLs, every kind.
    The input block is ClickHouse's too (body String, sent_ms Int64, config String)."""
    bodies, source, expected = bytes_case
    block = ch.query(f"SELECT body, sent_ms, c.config FROM {source} ORDER BY n", "RowBinary").bytes()
    reference = ch.query(f"SELECT CAST(tuple({FIELDS}), '{TYPED}') FROM {expected} ORDER BY n", "RowBinary").bytes()
    assert call_export("maskflow_typed", block, len(bodies)) == reference


def test_batch_bytes_are_clickhouses_own_rowbinary(ch, bytes_case):
    """maskflow_batch's bytes for Array(<the Tuple>), two rows (arrays) in one block, against
    ClickHouse's serialisation of the host's outcomes."""
    bodies, source, expected = bytes_case
    half = len(bodies) // 2
    ordered = lambda pairs: f"arrayMap(x -> x.2, arraySort(x -> x.1, groupArray({pairs})))"
    block = ch.query(f"SELECT CAST({ordered('(n, (body, sent_ms))')}, 'Array(Tuple(body String, sent_ms Int64))'), any(c.config) "
                     f"FROM {source} GROUP BY n < {half} ORDER BY n < {half} DESC", "RowBinary").bytes()
    reference = ch.query(f"SELECT CAST({ordered(f'(n, tuple({FIELDS}))')}, 'Array({TYPED})') FROM {expected} "
                         f"GROUP BY n < {half} ORDER BY n < {half} DESC", "RowBinary").bytes()
    assert call_export("maskflow_batch", block, 2) == reference


def test_a_date_beyond_date32_is_a_rejection_not_a_clamped_date(ch, tmp_path):
    """ClickHouse's Date32 ends on 2299-12-31; the transform's dates go on to 9999."""
    body = b'{"user_id": "u1", "ip": "10.0.0.1"}'
    last_day, next_day = 10_413_791_999_999, 10_413_792_000_000  # 2299-12-31 23:59:59.999, 2300-01-01
    typed, batched, as_json = udf_outcomes(ch, tmp_path, [body, body], [last_day, next_day])
    assert typed == batched
    assert typed[0]["row"]["create_date"] == "2299-12-31" == as_json[0]["row"]["create_date"]
    assert as_json[1]["row"]["create_date"] == "2300-01-01"  # the host's outcome: a row
    rejection = typed[1]["rejection"]
    assert rejection["reason"] == "invalid_timestamp"
    assert "2299-12-31" in rejection["message"]
    assert unmask(rejection["encrypted_body"]) == body


def test_a_refused_config_fails_the_query_without_the_key(ch, tmp_path):
    import base64

    secret = base64.b64encode(bytes(range(100, 132))).decode()  # 32 bytes: refused
    bad = tmp_path / "bad-config.json"
    bad.write_text(json.dumps({"keys": [{"id": "k1", "key": secret}]}))
    ch.query("CREATE TABLE bad_config (config String) ENGINE = Memory")
    try:
        ch.query(f"INSERT INTO bad_config SELECT raw_blob FROM file('{bad}', 'RawBlob')")
        assert "64 bytes" in q(ch, "SELECT maskflow_check(config) FROM bad_config")[0][0]
        calls = {"maskflow": "'{}', 1, config", "maskflow_typed": "'{}', 1, config",
                 "maskflow_batch": "[CAST(('{}', 1), 'Tuple(body String, sent_ms Int64)')], config"}
        for function, arguments in calls.items():
            with pytest.raises(Exception) as refused:
                ch.query(f"SELECT {function}({arguments}) FROM bad_config")
            assert function in str(refused.value) and secret[:16] not in str(refused.value)
    finally:
        ch.query("DROP TABLE bad_config")

"""maskflow.sql's pipeline as a user drives it: `INSERT INTO login_events_raw`, then the typed
MergeTree tables, against `maskflow transform` on the same lines."""

from __future__ import annotations

import json

import pytest

from chkit import q, run_setup
from testkit import SENT_MS, TEST_KEY, generated, host_transform


def table_contents(ch) -> tuple[list, list]:
    rows = q(ch, "SELECT user_id, device_type, masked_ip, masked_device_id, locale, app_version, create_date "
                 "FROM user_logins ORDER BY ALL")
    rejected = q(ch, "SELECT reason, message, encrypted_body, sent_ms FROM user_logins_rejected ORDER BY ALL")
    return rows, rejected


def insert_events(ch, path) -> None:
    ch.query(f"INSERT INTO login_events_raw SELECT line, toInt64({SENT_MS}) FROM file('{path}', 'LineAsString')")


def test_the_views_fill_typed_rows_and_rejections_and_the_key_stays_out_of_the_logs(ch, tmp_path):
    bodies = generated(3000, seed=3) + [b"\xff\xfe not utf-8", b'{"user_id": "u", "x": "' + b" " * 262144 + b'"}']
    events = tmp_path / "events.ndjson"
    events.write_bytes(b"\n".join(bodies) + b"\n")
    expected = host_transform(bodies)
    ch.query("TRUNCATE TABLE user_logins")
    ch.query("TRUNCATE TABLE user_logins_rejected")
    insert_events(ch, events)
    new_rows, new_rejected = table_contents(ch)

    want_rows = [[r["user_id"], r["device_type"], r["masked_ip"], r["masked_device_id"], r["locale"],
                  None if r["app_version"] is None else int(r["app_version"]), r["create_date"]]
                 for o in expected if (r := o.get("row"))]
    assert sorted(new_rows, key=json.dumps) == sorted(want_rows, key=json.dumps)
    want_rejected = [[r["reason"], r["message"], r["encrypted_body"], SENT_MS] for o in expected if (r := o.get("rejection"))]
    assert sorted(new_rejected, key=json.dumps) == sorted(want_rejected, key=json.dumps)
    assert {"body_not_utf8", "body_too_large"} <= {r[0] for r in new_rejected}
    assert len(new_rows) + len(new_rejected) == len(bodies)
    # Real types: what the MergeTree tables declare, not strings parsed by a view.
    types = dict(q(ch, "SELECT name, type FROM system.columns WHERE table = 'user_logins'"))
    assert (types["app_version"], types["create_date"]) == ("Nullable(Int32)", "Date32")

    # The key: not in any logged query (the log is on: the insert above is in it), nor an error.
    ch.query("SYSTEM FLUSH LOGS")
    secret = TEST_KEY.read_text().split(":", 1)[1].strip()
    assert q(ch, "SELECT count() FROM system.query_log WHERE query LIKE '%login_events_raw%'")[0][0] > 0
    leaks = q(ch, f"SELECT count() FROM system.query_log WHERE position(query, '{secret[:24]}') > 0 "
                  f"OR position(exception, '{secret[:24]}') > 0 OR position(formatted_query, '{secret[:24]}') > 0")
    assert leaks == [[0]]


def test_without_a_config_an_insert_fails_and_writes_nothing(ch, tmp_path, key_file):
    """A cross join with an empty config table would drop every event without a word."""
    events = tmp_path / "events.ndjson"
    events.write_bytes(b"\n".join(generated(50, seed=4)) + b"\n")
    before = table_contents(ch)
    ch.query("TRUNCATE TABLE maskflow_config")
    try:
        with pytest.raises(Exception) as failed:
            insert_events(ch, events)
        assert "maskflow_config must hold exactly one row" in str(failed.value)
        assert table_contents(ch) == before
    finally:
        run_setup(ch, key_file)
    assert q(ch, "SELECT count() FROM maskflow_config") == [[1]]


def test_big_bodies_are_rejections_not_a_failed_insert(ch, tmp_path):
    """500 bodies of 280 KiB (140 MB, over the module's 128 MB): each goes to the module in a call
    of its own, and each is a rejection `body_too_large` with its body encrypted."""
    big = [b'{"user_id": "u%d", "x": "' % i + b" " * 286_720 + b'"}' for i in range(500)]
    bodies = generated(1000, seed=8) + big
    events = tmp_path / "events.ndjson"
    events.write_bytes(b"\n".join(bodies) + b"\n")
    expected = host_transform(bodies)
    ch.query("TRUNCATE TABLE user_logins")
    ch.query("TRUNCATE TABLE user_logins_rejected")
    insert_events(ch, events)
    rows, rejected = table_contents(ch)
    assert len(rows) == sum("row" in o for o in expected)
    want = sorted([r["reason"], r["message"], r["encrypted_body"], SENT_MS] for o in expected if (r := o.get("rejection")))
    assert sorted(rejected) == want
    assert sum(r[0] == "body_too_large" for r in rejected) == len(big)

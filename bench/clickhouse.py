"""scripts/bench's ClickHouse section (docs/benchmarks.md, "ClickHouse"): on one thread and one
file of generated events, in chDB, the query a ClickHouse user would write without maskflow
(`JSONExtract` + `encrypt('aes-256-ecb', ...)`), maskflow's typed and JSON UDFs, the whole
pipeline of integrations/clickhouse/maskflow.sql (typed views) and the JSON views it replaced,
and the module's own rate (its `maskflow_typed` export called directly under wasmtime, and
`maskflow transform`). Prints one JSON object.

Runs in the integrations' venv (chDB, wasmtime): `integrations/test --venv` prints its python.
"""
import argparse
import json
import os
import re
import statistics
import struct
import subprocess
import sys
import tempfile
import time

import chdb
import wasmtime
from chdb.session import Session

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SQL = os.path.join(REPO, "integrations", "clickhouse", "maskflow.sql")
MODULE = os.path.join(REPO, "host", "module", "maskflow_transform.wasm")
SENT_MS = 1_700_000_000_000

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--events", type=int, default=200_000)
parser.add_argument("--rounds", type=int, default=3, help="runs of each measurement, interleaved (medians)")
parser.add_argument("--maskflow", default=os.path.join(REPO, "target", "release", "maskflow"))
parser.add_argument("--key-file", required=True)
args = parser.parse_args()

# What a ClickHouse user would write instead: the same fields out of the JSON, ip and device_id
# encrypted with the built-in AES (ECB: equal inputs give equal outputs, as masks must, but no
# authentication, no validation, no rejections). The key is a constant of the benchmark.
BUILT_IN = """
SELECT
    JSONExtractString(line, 'user_id') AS user_id,
    JSONExtractString(line, 'device_type') AS device_type,
    base64Encode(encrypt('aes-256-ecb', JSONExtractString(line, 'ip'), unhex(repeat('2a', 32)))) AS masked_ip,
    base64Encode(encrypt('aes-256-ecb', JSONExtractString(line, 'device_id'), unhex(repeat('2a', 32)))) AS masked_device_id,
    JSONExtractString(line, 'locale') AS locale,
    JSONExtractString(line, 'app_version') AS app_version,
    toDate(fromUnixTimestamp64Milli(toInt64({sent_ms}))) AS create_date
FROM file('{events}', 'LineAsString')
"""
UDF = "SELECT {function}(line, toInt64({sent_ms}), c.config) FROM file('{events}', 'LineAsString') AS e CROSS JOIN maskflow_config AS c"
# The batch function as the pipeline calls it: 8,192 events per call.
BATCH = """
SELECT maskflow_batch(groupArray(CAST((line, toInt64({sent_ms})), 'Tuple(body String, sent_ms Int64)')), any(c.config))
FROM file('{events}', 'LineAsString') AS e CROSS JOIN maskflow_config AS c
GROUP BY intDiv(rowNumberInAllBlocks(), 8192)
"""
ONE_THREAD = " SETTINGS max_threads = 1, max_insert_threads = 1"

# The pipeline before the typed function (kept here to measure what the change bought): the JSON
# function's outcome in a String column, parsed again by two views with JSONExtract.
JSON_VIEWS = """
CREATE TABLE json_outcomes (outcome String, sent_ms Int64) ENGINE = Null;
CREATE TABLE json_events_raw (body String, sent_ms Int64) ENGINE = Null;
CREATE TABLE json_user_logins AS user_logins;
CREATE TABLE json_user_logins_rejected AS user_logins_rejected;
CREATE MATERIALIZED VIEW json_mask TO json_outcomes AS
SELECT maskflow(e.body, e.sent_ms, c.config) AS outcome, e.sent_ms AS sent_ms
FROM json_events_raw AS e CROSS JOIN maskflow_config AS c;
CREATE MATERIALIZED VIEW json_rows TO json_user_logins AS
SELECT JSONExtractString(outcome, 'row', 'user_id') AS user_id,
    JSONExtract(outcome, 'row', 'device_type', 'Nullable(String)') AS device_type,
    JSONExtract(outcome, 'row', 'masked_ip', 'Nullable(String)') AS masked_ip,
    JSONExtract(outcome, 'row', 'masked_device_id', 'Nullable(String)') AS masked_device_id,
    JSONExtract(outcome, 'row', 'locale', 'Nullable(String)') AS locale,
    toInt32OrNull(JSONExtract(outcome, 'row', 'app_version', 'Nullable(String)')) AS app_version,
    toDate32(JSONExtractString(outcome, 'row', 'create_date')) AS create_date
FROM json_outcomes WHERE JSONHas(outcome, 'row');
CREATE MATERIALIZED VIEW json_rejections TO json_user_logins_rejected AS
SELECT JSONExtractString(outcome, 'rejection', 'reason') AS reason,
    JSONExtractString(outcome, 'rejection', 'message') AS message,
    JSONExtractString(outcome, 'rejection', 'encrypted_body') AS encrypted_body, sent_ms
FROM json_outcomes WHERE JSONHas(outcome, 'rejection');
"""


def log(*what):
    print("bench clickhouse:", *what, file=sys.stderr, flush=True)


def statements(sql):
    return [s for s in re.split(r";\s*\n", sql) if s.strip()]


def timed(f):
    started = time.perf_counter()
    f()
    return time.perf_counter() - started


def count(session, table):
    return int(session.query(f"SELECT count() FROM {table}", "CSV").bytes())


class Module:
    """The module's `maskflow_typed` export called as ClickHouse calls it (transform/ABI.md), in
    wasmtime with its default settings: the module's own rate, without ClickHouse around it."""

    def __init__(self):
        engine = wasmtime.Engine()
        self.store = wasmtime.Store(engine)
        instance = wasmtime.Instance(self.store, wasmtime.Module.from_file(engine, MODULE), [])
        self.exports = instance.exports(self.store)
        self.memory = self.exports["memory"]

    def view(self, handle):
        return struct.unpack("<II", self.memory.read(self.store, handle, handle + 8))

    def call(self, block, rows):
        """Seconds in the function itself (the block already in the module's memory)."""
        handle = self.exports["clickhouse_create_buffer"](self.store, len(block))
        ptr, _ = self.view(handle)
        self.memory.write(self.store, block, ptr)
        started = time.perf_counter()
        result = self.exports["maskflow_typed"](self.store, handle, rows)
        seconds = time.perf_counter() - started
        self.exports["clickhouse_destroy_buffer"](self.store, result)
        self.exports["clickhouse_destroy_buffer"](self.store, handle)
        return seconds


def main():
    work = tempfile.mkdtemp(prefix="maskflow-bench-ch-")
    events = os.path.join(work, "events.ndjson")
    with open(events, "wb") as f:
        subprocess.run([args.maskflow, "send", "--generate", str(args.events), "--seed", "5", "--print"], stdout=f, check=True)
    key = os.path.join(work, "maskflow.key")
    with open(key, "w") as f:
        f.write(open(args.key_file).read())
    os.chmod(key, 0o600)

    session = Session(os.path.join(work, "db") + "?allow_experimental_webassembly_udf=1")
    sql = open(SQL).read().replace("'maskflow_transform.wasm'", f"'{MODULE}'").replace("'maskflow.key'", f"'{key}'")
    for statement in statements(sql) + statements(JSON_VIEWS):
        session.query(statement)
    n = args.events
    fill = dict(events=events, sent_ms=SENT_MS)

    # The module's input: the blocks ClickHouse would hand it (65,409 rows: file()'s block size).
    blocks = []
    block_rows = 65_409
    for start in range(0, n, block_rows):
        rows = min(block_rows, n - start)
        data = session.query(f"SELECT line, toInt64({SENT_MS}), c.config FROM file('{events}', 'LineAsString') AS e "
                             f"CROSS JOIN maskflow_config AS c LIMIT {rows} OFFSET {start}", "RowBinary").bytes()
        blocks.append((data, rows))
    module = Module()

    def pipeline(source, tables):
        def run():
            for table in tables:
                session.query(f"TRUNCATE TABLE {table}")
            session.query(f"INSERT INTO {source} SELECT line, toInt64({SENT_MS}) FROM file('{events}', 'LineAsString')"
                          + ONE_THREAD)
            landed = sum(count(session, t) for t in tables)
            if landed != n:
                raise SystemExit(f"bench clickhouse: {source} landed {landed} of {n} events")
        return run

    def host():
        with open(events, "rb") as stdin:
            subprocess.run([args.maskflow, "transform", "--key-file", key, "--sent-timestamp-ms", str(SENT_MS)],
                           stdin=stdin, stdout=subprocess.DEVNULL, check=True,
                           env={**os.environ, "MASKFLOW_MODULE_CACHE": "off"})

    measures = {
        "built-in": lambda: session.query(BUILT_IN.format(**fill) + ONE_THREAD, "Null"),
        "maskflow_typed": lambda: session.query(UDF.format(function="maskflow_typed", **fill) + ONE_THREAD, "Null"),
        "maskflow_batch (8,192 events per call)": lambda: session.query(BATCH.format(**fill) + ONE_THREAD, "Null"),
        "maskflow (JSON)": lambda: session.query(UDF.format(function="maskflow", **fill) + ONE_THREAD, "Null"),
        "pipeline (typed views)": pipeline("login_events_raw", ["user_logins", "user_logins_rejected"]),
        "pipeline (JSON views, before)": pipeline("json_events_raw", ["json_user_logins", "json_user_logins_rejected"]),
        "module (wasmtime, maskflow_typed)": None,
        "maskflow transform": host,
    }
    seconds = {name: [] for name in measures}
    for f in measures.values():
        if f:
            f()  # warm: instances compiled, the file in the page cache
    for round_ in range(args.rounds):
        for name, f in measures.items():
            s = sum(module.call(*b) for b in blocks) if f is None else timed(f)
            seconds[name].append(s)
            log(f"round {round_ + 1}: {name}: {n / s:,.0f} events/s")
    rates = {name: n / statistics.median(s) for name, s in seconds.items()}
    built_in = rates["built-in"]
    print(json.dumps({
        "events": n, "rounds": args.rounds, "threads": 1, "chdb": chdb.__version__,
        "seconds": seconds, "events_per_s": rates,
        "of_built_in": {name: rate / built_in for name, rate in rates.items()},
        "rejected": count(session, "user_logins_rejected"),
    }))


main()

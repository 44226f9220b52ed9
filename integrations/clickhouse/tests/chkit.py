"""Helpers of the ClickHouse suite: maskflow.sql run statement by statement, queries with typed
results, the typed outcome read back as the golden vectors' shape, and the module's
`maskflow_typed` export called directly (wasmtime), to compare its bytes with ClickHouse's.
"""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

import wasmtime

from testkit import REPO

HERE = Path(__file__).resolve().parent.parent
SQL = HERE / "maskflow.sql"
MODULE = REPO / "host" / "module" / "maskflow_transform.wasm"
# The setting the README gives chDB: the UDFs on.
SETTINGS = "allow_experimental_webassembly_udf=1"
COLUMNS = ["user_id", "device_type", "masked_ip", "masked_device_id", "locale", "app_version", "create_date"]


def statements(sql: str) -> list[str]:
    """maskflow.sql's statements: a `;` at the end of a line ends one (its header says so)."""
    return [s for s in re.split(r";\s*\n", sql) if s.strip() and not all(
        l.lstrip().startswith("--") or not l.strip() for l in s.splitlines())]


def setup_sql(key: Path, module: Path = MODULE) -> str:
    """maskflow.sql with absolute paths for the module and the key file."""
    return SQL.read_text().replace("'maskflow_transform.wasm'", f"'{module}'").replace("'maskflow.key'", f"'{key}'")


def run_setup(session, key: Path) -> None:
    for statement in statements(setup_sql(key)):
        session.query(statement)


# The return type of maskflow_typed, as maskflow.sql declares it: what the byte comparison casts to.
TYPED = re.search(r"FUNCTION maskflow_typed .*?RETURNS (Tuple\(.*?\)\))\s*SETTINGS", SQL.read_text(), re.S).group(1)


def q(session, sql: str) -> list[list]:
    """Rows of a query as JSON values."""
    out = session.query(sql, "JSONCompactEachRow").bytes()
    return [json.loads(line) for line in out.decode().splitlines()]


def outcome_of(typed: dict) -> dict:
    """A maskflow_typed tuple (a JSON object: JSON formats write named tuples so) in the golden
    vectors' shape."""
    assert list(typed) == COLUMNS + ["reason", "message", "encrypted_body"], typed
    *cells, reason, message, encrypted_body = typed.values()
    if reason is None:
        row = dict(zip(COLUMNS, cells, strict=True))
        if row["app_version"] is not None:
            row["app_version"] = str(row["app_version"])
        return {"row": row}
    assert cells == [None] * len(COLUMNS), typed
    return {"rejection": {"reason": reason, "message": message, "encrypted_body": encrypted_body}}


def leb128(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def rowbinary_events(bodies: list[bytes], times: list[int]) -> bytes:
    """A RowBinary file of `body String, sent_ms Int64, n UInt32` (n restores the order)."""
    return b"".join(
        leb128(len(body)) + body + t.to_bytes(8, "little", signed=True) + n.to_bytes(4, "little")
        for n, (body, t) in enumerate(zip(bodies, times, strict=True))
    )


def call_export(function: str, block: bytes, rows: int) -> bytes:
    """The module's BUFFERED_V1 `function` called as ClickHouse calls it (transform/ABI.md): the
    input block written into a buffer from clickhouse_create_buffer, the result buffer read back."""
    engine = wasmtime.Engine()
    store = wasmtime.Store(engine)
    instance = wasmtime.Instance(store, wasmtime.Module.from_file(engine, str(MODULE)), [])
    exports = instance.exports(store)
    memory = exports["memory"]

    def view(handle: int) -> tuple[int, int]:
        return struct.unpack("<II", memory.read(store, handle, handle + 8))

    handle = exports["clickhouse_create_buffer"](store, len(block))
    ptr, size = view(handle)
    assert size == len(block)
    memory.write(store, block, ptr)
    result = exports[function](store, handle, rows)
    ptr, size = view(result)
    out = bytes(memory.read(store, ptr, ptr + size))
    exports["clickhouse_destroy_buffer"](store, result)
    exports["clickhouse_destroy_buffer"](store, handle)
    return out


def udf_outcomes(ch, tmp_path: Path, bodies: list[bytes], times: list[int]) -> tuple[list[dict], ...]:
    """The three functions over `bodies`, read from a file (no value ever in a query's text): the
    outcomes of the typed function and of the batch function (through ClickHouse's own decoding
    of their tuples; the batch in arrays of 1,000 events), and of the JSON function."""
    events = tmp_path / "events.bin"
    events.write_bytes(rowbinary_events(bodies, times))
    source = f"file('{events}', 'RowBinary', 'body String, sent_ms Int64, n UInt32') AS e CROSS JOIN maskflow_config AS c"
    rows = q(ch, f"SELECT n, maskflow_typed(body, sent_ms, c.config), maskflow(body, sent_ms, c.config) FROM {source} ORDER BY n")
    assert [r[0] for r in rows] == list(range(len(bodies)))
    batches = q(ch, "SELECT ns, maskflow_batch(events, config) FROM (SELECT arraySort(groupArray(n)) AS ns, "
                    "arrayMap(x -> x.2, arraySort(x -> x.1, groupArray((n, CAST((body, sent_ms), 'Tuple(body String, sent_ms Int64)'))))) AS events, "
                    f"any(c.config) AS config FROM {source} GROUP BY intDiv(n, 1000)) ORDER BY ns[1]")
    assert [n for ns, _ in batches for n in ns] == list(range(len(bodies)))
    batched = [outcome_of(o) for _, outcomes in batches for o in outcomes]
    return [outcome_of(r[1]) for r in rows], batched, [json.loads(r[2]) for r in rows]

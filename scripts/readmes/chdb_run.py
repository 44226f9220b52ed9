"""Runs one ```sql chdb block in chDB (ClickHouse in-process), under the integrations venv's python:
    python chdb_run.py DATABASE_DIR BLOCK.sql
The database directory is the README's, so tables made by one block are there for the next; the
working directory is the session's, so `file('events.ndjson')` reads what the README's blocks wrote.
Statements end with a `;` at the end of a line (as in integrations/clickhouse/maskflow.sql); each
result is printed in ClickHouse's PrettyCompact format. Any error fails the block (exit 1)."""

import sys

from chdb.session import Session


def statements(text):
    current = []
    for line in text.splitlines():
        current.append(line)
        if line.rstrip().endswith(";"):
            yield "\n".join(current).strip().rstrip(";")
            current = []
    rest = "\n".join(current).strip()
    if rest and not all(l.strip().startswith("--") or not l.strip() for l in current):
        yield rest


# What integrations/clickhouse/README.md asks of a ClickHouse server: WebAssembly UDFs on (a
# server setting, so chDB takes it when the database is opened, not from a SET). The functions
# switch fuel metering off themselves (maskflow.sql); max_fuel=0 only keeps a README's own
# function, declared without that setting, from stopping on a large block.
SETTINGS = "allow_experimental_webassembly_udf=1&webassembly_udf_max_fuel=0"


def main(database, path):
    session = Session(f"{database}?{SETTINGS}")
    try:
        for statement in statements(open(path, encoding="utf-8").read()):
            print(session.query(statement, "PrettyCompact"), end="", flush=True)
    finally:
        session.close()


if __name__ == "__main__":
    main(*sys.argv[1:])

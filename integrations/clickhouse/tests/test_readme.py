"""The README's chDB example, as pasted, in a folder holding the four files it names. Each run is
its own Python process: chDB's embedded server is one per process."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from chkit import HERE, MODULE, SETTINGS, SQL
from testkit import SENT_MS, TEST_KEY, generated, host_transform

README = HERE / "README.md"


def chdb_example() -> str:
    section = README.read_text().split("## chDB", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.fixture
def folder(tmp_path):
    """The four files of the README, in a fresh folder."""
    shutil.copy(MODULE, tmp_path / "maskflow_transform.wasm")
    shutil.copy(SQL, tmp_path / "maskflow.sql")
    (tmp_path / "maskflow.key").write_text(TEST_KEY.read_text())
    (tmp_path / "maskflow.key").chmod(0o600)
    return tmp_path


def run(folder: Path, code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=folder, capture_output=True, text=True, timeout=600)


def test_the_chdb_example_runs_as_pasted(folder):
    bodies = generated(1000, seed=21)
    (folder / "events.ndjson").write_bytes(b"\n".join(bodies) + b"\n")
    done = run(folder, chdb_example())
    assert done.returncode == 0, done.stderr
    assert "user_id" in done.stdout  # the example prints its tables

    # What the example left in its database, read by another process.
    counts = run(folder, f"from chdb.session import Session\n"
                         f"s = Session('maskflow-db?{SETTINGS}')\n"
                         "print(s.query('SELECT (SELECT count() FROM user_logins), "
                         "(SELECT count() FROM user_logins_rejected)', 'JSONCompactEachRow'))")
    assert counts.returncode == 0, counts.stderr
    expected = host_transform(bodies, sent_ms=SENT_MS)
    assert json.loads(counts.stdout) == [sum("row" in o for o in expected), sum("rejection" in o for o in expected)]


def test_the_chdb_example_refuses_a_key_file_others_may_read(folder):
    (folder / "events.ndjson").write_bytes(b"\n".join(generated(10)) + b"\n")
    (folder / "maskflow.key").chmod(0o644)
    done = run(folder, chdb_example())
    assert done.returncode != 0
    assert "key file maskflow.key has mode 644: group or others can read the key; chmod 600 maskflow.key" in done.stderr
    assert "INSERT INTO login_events_raw" not in done.stderr  # it stopped at the key, before any event

"""The one chDB session of this pytest process (chDB's embedded server is one per process and
fixed by its first connection), with maskflow.sql loaded as the README says, and the key file.
"""

from __future__ import annotations

import pytest
from chdb.session import Session

from chkit import SETTINGS, run_setup
from testkit import TEST_KEY

# chDB has no query_log unless its config asks for one: the tests need it to look for the key.
CONFIG_XML = """<clickhouse>
  <query_log><database>system</database><table>query_log</table>
    <flush_interval_milliseconds>500</flush_interval_milliseconds></query_log>
</clickhouse>
"""


@pytest.fixture(scope="session")
def key_file(tmp_path_factory):
    key = tmp_path_factory.mktemp("key") / "maskflow.key"
    key.write_text(TEST_KEY.read_text())
    key.chmod(0o600)
    return key


@pytest.fixture(scope="session")
def ch(tmp_path_factory, key_file):
    tmp = tmp_path_factory.mktemp("chdb")
    (tmp / "config.xml").write_text(CONFIG_XML)
    session = Session(f"{tmp / 'db'}?{SETTINGS}&config-file={tmp / 'config.xml'}")
    run_setup(session, key_file)
    yield session
    session.close()

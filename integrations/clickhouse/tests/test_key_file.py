"""The key file through maskflow.sql: the host's rules, refused with the host's reason (the CLI
is the reference) and never with key material; accepted files mask as the CLI does."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

import pytest

from chkit import q, run_setup
from testkit import maskflow_bin

# ClickHouse shows a violated constraint's values cut to 100 characters, the opening quote
# included, and an ellipsis.
SHOWN = 99


def key_bytes(seed: int) -> bytes:
    """A key whose 8-character base64 windows appear in no message (bytes 0x80 and up)."""
    return bytes(((i * 37 + seed) % 256) | 0x80 for i in range(64))


B64 = base64.b64encode(key_bytes(11)).decode()
OTHER = base64.b64encode(key_bytes(99)).decode()


def malformed() -> list[str]:
    """transform/src/keyfile.rs's malformed files, and Unicode white space."""
    mangled = B64[:40] + "!" + B64[41:]
    return [
        f"{B64}:k1\n", f"# keys\n\n{B64}:k2", f"k1:{B64} # main key\n", f"k1:{B64}#main\n", f" k1:{B64}\n",
        f"k1: {B64}\n", f"k1:{B64}\t\n", f"k1:{B64}\r\nk2:{OTHER}\r\n", f"k1:{B64[:80]}\n", f"k1:{B64[:87]}\n",
        f"{B64[:60]}\n", f"k1:{mangled}\n", f"k1:{B64.replace('+', '-').replace('/', '_')}\n", f"K1:{B64}\n",
        f"k.1:{B64}\n", f"k-1:{B64}\n", f"kéy:{B64}\n", f":{B64}\n", f"seventeenchars123:{B64}\n",
        f"{B64[:8]}:{B64[8:]}\n", f"k1:{B64}:k1\n", f"k1:{B64}\nk2:{OTHER}\nk1:{OTHER}\n",
        f"k1:{B64}\u00a0\n", f"k1:{B64}\u3000\n", "# no key here\n\n",
    ]


def cli_refusal(path: Path) -> str:
    """The CLI's reason for refusing a key file, as maskflow.sql words it: the module's words for
    the text (`key file line N: rule`, `key file holds no key line`: the host's rules, without the
    file's name, which the module is not given), the file by its name where the SQL checks it."""
    done = subprocess.run([maskflow_bin(), "mask", "--key-file", str(path), "--column", "ip", "10.0.0.1"],
                          capture_output=True, text=True)
    assert done.returncode != 0, path.read_text()
    said = next(l for l in done.stderr.splitlines() if l.startswith("maskflow: error: "))
    reason = said.removeprefix("maskflow: error: ").removeprefix("key: ")
    return (reason.replace(f"key file {path} line ", "key file line ").replace(f"key file {path} holds ", "key file holds ")
            .replace(str(path), path.name))


def load(ch, key: Path) -> str:
    """Runs maskflow.sql with `key` as the key file; the error text, or '' when it loads."""
    try:
        run_setup(ch, key)
    except Exception as e:  # chDB raises a plain RuntimeError carrying ClickHouse's message
        return str(e)
    return ""


@pytest.fixture
def reload_good_key(ch, key_file):
    yield
    assert load(ch, key_file) == ""


CASES = [(text, 0o600) for text in malformed()] + [(f"k1:{B64}\n", mode) for mode in (0o644, 0o640, 0o604, 0o602, 0o610)]


@pytest.mark.parametrize("text,mode", CASES, ids=[f"{i}-{m:o}" for i, (_, m) in enumerate(CASES)])
def test_a_refused_key_file_fails_the_load_with_the_hosts_reason_and_never_the_key(ch, tmp_path, text, mode, reload_good_key):
    key = tmp_path / "maskflow.key"
    key.write_text(text)
    key.chmod(mode)
    reason = cli_refusal(key)
    error = load(ch, key)
    shown = reason if len(reason) <= SHOWN else reason[:SHOWN] + "…"
    assert f"refused = '{shown}'" in error, (reason, error)
    for secret in (B64, OTHER):
        assert not any(secret[i:i + 8] in error for i in range(len(secret) - 7)), error
    # Nothing is stored, and the pipeline says why it stops instead of trapping on every insert.
    assert q(ch, "SELECT count() FROM maskflow_config") == [[0]]
    with pytest.raises(Exception) as stopped:
        ch.query("INSERT INTO login_events_raw VALUES ('{\"user_id\": \"u1\"}', 1700000000000)")
    assert "maskflow_config must hold exactly one row" in str(stopped.value)


@pytest.mark.parametrize("text", [
    f"k1:{B64}\n", f"k1:{B64}", f"{B64}\n", f"# rotated 2026\n\nk2:{OTHER}\n  \n# old\nk1:{B64}\n", f"k2:{OTHER}\n\r\n",
], ids=["line", "no-newline", "bare", "comments-two-keys", "blank-cr-line"])
def test_an_accepted_key_file_masks_as_the_cli(ch, tmp_path, text, reload_good_key):
    key = tmp_path / "maskflow.key"
    key.write_text(text)
    key.chmod(0o600)
    assert load(ch, key) == ""
    cli = subprocess.run([maskflow_bin(), "mask", "--key-file", str(key), "--column", "ip", "10.0.0.1"],
                         capture_output=True, text=True, check=True).stdout.strip()
    typed = q(ch, "SELECT maskflow_typed('{\"user_id\": \"u1\", \"ip\": \"10.0.0.1\"}', 1700000000000, config).masked_ip "
                  "FROM maskflow_config")
    assert typed == [[cli]]

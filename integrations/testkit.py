"""Shared helpers of the integrations' pytest suites and their fixtures: integrations/test puts this
folder on the path and loads this file as a pytest plugin (`-p testkit`).

The reference everywhere is the host: `maskflow transform` (target/release/maskflow, built by
scripts/test before this runs) and the golden vectors (tests/vectors/golden.jsonl).
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
GOLDEN = REPO / "tests" / "vectors" / "golden.jsonl"
TEST_KEY = REPO / "tests" / "vectors" / "test.key"
SENT_MS = 1_700_000_000_000


def maskflow_bin() -> Path:
    path = Path(os.environ.get("MASKFLOW_BIN", REPO / "target" / "release" / "maskflow"))
    if not path.exists():
        pytest.fail(f"{path} is missing: build it first (cargo build --release -p maskflow-host)")
    return path


def vector_body(v: dict) -> bytes:
    """tests/src/lib.rs `Vector::body`."""
    body = v["body"].encode() if v.get("body") is not None else base64.b64decode(v["body_base64"])
    if v.get("pad_body_to") is not None:
        body = body[: v["pad_body_to"]].ljust(v["pad_body_to"], b" ")
    return body


def golden() -> list[dict]:
    return [json.loads(line) for line in GOLDEN.read_text().splitlines() if line.strip()]


def key_text() -> str:
    return TEST_KEY.read_text()


def generated(n: int, seed: int = 7) -> list[bytes]:
    """Fetch-shaped login events from the host's own generator (2% malformed)."""
    out = subprocess.run(
        [maskflow_bin(), "send", "--generate", str(n), "--seed", str(seed), "--print"],
        check=True,
        capture_output=True,
    ).stdout
    return out.split(b"\n")[:n]


def host_transform(bodies: list[bytes], sent_ms: int = SENT_MS, key_file: Path = TEST_KEY,
                   args: tuple[str, ...] = ()) -> list[dict]:
    """`maskflow transform` over NDJSON lines, as outcome JSON (the golden vectors' shape);
    `args` are more flags (`--sent-timestamp-field sent_at`). Bodies must not contain a newline
    (one line each)."""
    assert all(b"\n" not in b for b in bodies)
    env = {**os.environ, "MASKFLOW_MODULE_CACHE": "off"}
    env.pop("MASKFLOW_KEY", None)
    key_copy = Path(os.environ.get("TMPDIR", "/tmp")) / f"maskflow-it-{os.getpid()}.key"
    key_copy.write_text(key_file.read_text())
    key_copy.chmod(0o600)
    try:
        out = subprocess.run(
            [maskflow_bin(), "transform", "--key-file", str(key_copy), "--sent-timestamp-ms", str(sent_ms), *args],
            input=b"\n".join(bodies) + b"\n",
            check=True,
            capture_output=True,
            env=env,
        ).stdout
    finally:
        key_copy.unlink()
    outcomes = transform_outcomes(out)
    assert len(outcomes) == len(bodies)
    return outcomes


def transform_outcomes(stdout: bytes) -> list[dict]:
    """`maskflow transform`'s NDJSON output as outcome JSON (the golden vectors' shape)."""
    outcomes = []
    for line in stdout.decode().splitlines():
        record = json.loads(line)
        if "rejected" in record:
            r = record["rejected"]
            outcomes.append({"rejection": {k: r[k] for k in ("reason", "message", "encrypted_body")}})
        else:
            outcomes.append({"row": record})
    return outcomes


def assert_vector(v: dict, actual: dict, unmask) -> None:
    """tests/tests/golden.rs `assert_matches`: a null expected encrypted body (a huge one, not
    stored) is checked by unmasking it back to the body instead."""
    expected = json.loads(json.dumps(v["expected"]))
    actual = json.loads(json.dumps(actual))
    if "rejection" in expected and expected["rejection"]["encrypted_body"] is None:
        encrypted = actual["rejection"]["encrypted_body"]
        assert unmask(encrypted) == vector_body(v), f"{v['name']}: encrypted body"
        actual["rejection"]["encrypted_body"] = None
    assert actual == expected, v["name"]


@pytest.fixture(scope="session")
def golden_vectors() -> list[dict]:
    return golden()


# ---- README blocks -------------------------------------------------------------------------
# The convention (stated in each README's "Tests"): a fenced block whose info string holds
# `no-run` (```sh no-run) is not run; every other `sh` and `python` block runs as pasted, in
# order, in one scratch directory that stands for the root of a checkout (the checkout's
# top-level entries are linked into it; what the blocks write stays in it), with `maskflow`
# and this venv's executables on PATH; the python blocks share one namespace.
_FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```\s*$", re.S | re.M)


def readme_blocks(readme: Path) -> list[tuple[str, bool, str]]:
    """(language, runs, code) of every fenced block, in order."""
    blocks = []
    for info, code in _FENCE.findall(readme.read_text()):
        words = info.split()
        blocks.append((words[0] if words else "", "no-run" not in words, code))
    return blocks


def run_readme(readme: Path, workdir: Path, env: dict[str, str] | None = None, timeout: float = 600) -> list[str]:
    """Runs the README's blocks as the convention says; returns what each block that ran
    printed (stdout), in order. Fails on the first block that exits non-zero or raises."""
    env = {**os.environ, **(env or {})}
    env["PATH"] = os.pathsep.join([str(maskflow_bin().parent), str(Path(sys.executable).parent), env.get("PATH", "")])
    env.pop("MASKFLOW_KEY", None)
    for entry in REPO.iterdir():
        if entry.name not in (".git", "target") and not (workdir / entry.name).exists():
            (workdir / entry.name).symlink_to(entry)
    namespace: dict = {"__name__": "__readme__"}
    printed = []
    for language, runs, code in readme_blocks(readme):
        if not runs:
            continue
        if language == "sh":
            out = subprocess.run(["bash", "-euo", "pipefail", "-c", code], cwd=workdir, env=env,
                                 capture_output=True, timeout=timeout)
            assert out.returncode == 0, f"{readme.name} block failed ({out.returncode}):\n{code}\n{out.stderr.decode()}"
            printed.append(out.stdout.decode())
        elif language == "python":
            buffer = io.StringIO()
            cwd = os.getcwd()
            os.chdir(workdir)
            try:
                with contextlib.redirect_stdout(buffer):
                    exec(compile(code, f"{readme.name} block", "exec"), namespace)
            finally:
                os.chdir(cwd)
            printed.append(buffer.getvalue())
        else:
            raise AssertionError(f"{readme.name}: a `{language}` block must be marked no-run or be sh/python")
    return printed


@pytest.fixture(scope="session")
def aws_env():
    """LocalStack's SQS, KMS and Secrets Manager (`scripts/services start`: idempotent, and
    scripts/test starts them before the integrations): its variables set in this process for
    the session (endpoints, region, test credentials), and boto3 clients of KMS and Secrets
    Manager for the tests' own set-up."""
    import boto3

    services = REPO / "scripts" / "services"
    subprocess.run([services, "start"], check=True, stdout=subprocess.DEVNULL)
    env = subprocess.run([services, "env"], check=True, capture_output=True, text=True).stdout
    with pytest.MonkeyPatch.context() as mp:
        for line in env.splitlines():
            if line.startswith("export "):
                name, _, value = line[len("export "):].partition("=")
                mp.setenv(name, value.strip("'\""))
        endpoint = os.environ["AWS_ENDPOINT_URL"]
        yield {
            "kms": boto3.client("kms", endpoint_url=endpoint, region_name="us-east-1"),
            "secrets": boto3.client("secretsmanager", endpoint_url=endpoint, region_name="us-east-1"),
        }


def put_secret(aws: dict, text: str) -> str:
    """A new Secrets Manager secret holding `text`; returns its name."""
    import uuid

    name = f"maskflow-it-{uuid.uuid4().hex[:12]}"
    aws["secrets"].create_secret(Name=name, SecretString=text)
    return name


"""Shared helpers of the integrations' pytest suites and their fixtures: integrations/test puts this
folder on the path and loads this file as a pytest plugin (`-p testkit`).

The reference everywhere is the host: `maskflow transform` (target/release/maskflow, built by
scripts/test before this runs) and the golden vectors (tests/vectors/golden.jsonl).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
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


def host_transform(bodies: list[bytes], sent_ms: int = SENT_MS, key_file: Path = TEST_KEY) -> list[dict]:
    """`maskflow transform` over NDJSON lines, as outcome JSON (the golden vectors' shape).
    Bodies must not contain a newline (one line each)."""
    assert all(b"\n" not in b for b in bodies)
    env = {**os.environ, "MASKFLOW_MODULE_CACHE": "off"}
    env.pop("MASKFLOW_KEY", None)
    key_copy = Path(os.environ.get("TMPDIR", "/tmp")) / f"maskflow-it-{os.getpid()}.key"
    key_copy.write_text(key_file.read_text())
    key_copy.chmod(0o600)
    try:
        out = subprocess.run(
            [maskflow_bin(), "transform", "--key-file", str(key_copy), "--sent-timestamp-ms", str(sent_ms)],
            input=b"\n".join(bodies) + b"\n",
            check=True,
            capture_output=True,
            env=env,
        ).stdout
    finally:
        key_copy.unlink()
    outcomes = []
    for line in out.decode().splitlines():
        record = json.loads(line)
        if "rejected" in record:
            r = record["rejected"]
            outcomes.append({"rejection": {k: r[k] for k in ("reason", "message", "encrypted_body")}})
        else:
            outcomes.append({"row": record})
    assert len(outcomes) == len(bodies)
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


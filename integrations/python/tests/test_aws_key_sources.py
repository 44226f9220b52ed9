"""The package reads the host's key sources (``maskflow.key_source_text``, ``maskflow[aws]``):
a key file, a variable, a Secrets Manager secret, KMS-wrapped lines in any of them, against
LocalStack's own KMS and Secrets Manager (``scripts/services``). The reference is the host:
``maskflow transform --key-source`` over the same source gives the same rows and masks.
Refusals are ``KeySourceError`` with the service's code, never key material."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import uuid

import pytest

from maskflow import ConfigError, KeySourceError, Transformer, key_source_text

from testkit import SENT_MS, generated, maskflow_bin, put_secret, transform_outcomes


@pytest.fixture(scope="module")
def aws(aws_env):
    return aws_env


def host(args: list[str], stdin: bytes = b"") -> bytes:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MASKFLOW_KEY")}
    env["MASKFLOW_MODULE_CACHE"] = "off"
    out = subprocess.run([maskflow_bin(), *args], input=stdin, capture_output=True, env=env)
    assert out.returncode == 0, out.stderr.decode()
    return out.stdout


def keygen(*args: str) -> str:
    return host(["keygen", *args]).decode().strip()


def python_outcomes(keys: str, bodies: list[bytes]) -> list[dict]:
    return [o.to_json() for o in Transformer(keys=keys).transform(bodies, sent_timestamp_ms=SENT_MS)]


def host_outcomes(source: str, bodies: list[bytes]) -> list[dict]:
    out = host(["transform", "--key-source", source, "--sent-timestamp-ms", str(SENT_MS)], b"\n".join(bodies) + b"\n")
    return transform_outcomes(out)


def test_every_source_gives_the_hosts_masks(aws, tmp_path, monkeypatch):
    arn = aws["kms"].create_key()["KeyMetadata"]["Arn"]
    text = keygen("--id", "k2", "--kms-key-id", arn) + "\n" + keygen("--id", "k1") + "\n"
    assert text.startswith(f"k2:kms:{arn}:")
    path = tmp_path / "wrapped.key"
    path.write_text(text)
    path.chmod(0o600)
    monkeypatch.setenv("MF_PY_KEYS", text)
    bodies = generated(300, seed=23)
    sources = [f"file:{path}", "env:MF_PY_KEYS", f"aws-secretsmanager:{put_secret(aws, text)}"]
    for source in sources:
        keys = key_source_text(source)
        assert ":kms:" not in keys and keys.splitlines()[0].startswith("k2:")
        assert python_outcomes(keys, bodies) == host_outcomes(source, bodies), source
    masked = [o for o in python_outcomes(key_source_text(sources[2]), bodies) if "row" in o]
    assert masked and all(o["row"]["masked_ip"].startswith("k2.") for o in masked if o["row"]["masked_ip"])


def test_refusals_name_the_call_and_code_never_the_key(aws):
    arn = aws["kms"].create_key()["KeyMetadata"]["Arn"]
    wrapped = keygen("--id", "k2", "--kms-key-id", arn)
    moved = wrapped.replace("k2:", "k3:", 1)
    cases = [
        (f"aws-secretsmanager:{put_secret(aws, moved)}", "Decrypt", "InvalidCiphertextException"),
        (f"aws-secretsmanager:mf-py-missing-{uuid.uuid4().hex[:8]}", "GetSecretValue", "ResourceNotFoundException"),
    ]
    disabled = aws["kms"].create_key()["KeyMetadata"]["Arn"]
    disabled_line = keygen("--id", "k4", "--kms-key-id", disabled)
    aws["kms"].disable_key(KeyId=disabled)
    cases.append((f"aws-secretsmanager:{put_secret(aws, disabled_line)}", "Decrypt", "DisabledException"))
    for source, call, code in cases:
        with pytest.raises(KeySourceError) as e:
            key_source_text(source)
        assert (e.value.call, e.value.code, e.value.transient) == (call, code, False), source
        assert wrapped.rsplit(":", 1)[1][:16] not in str(e.value)
    with pytest.raises(ConfigError, match="holds JSON"):
        key_source_text(f"aws-secretsmanager:{put_secret(aws, json.dumps({'key': keygen()}))}")
    with pytest.raises(ConfigError, match="not one of"):
        key_source_text("s3:bucket/key")


def test_a_wrapped_line_decrypts_to_the_key_the_hosts_kms_call_gives(aws, monkeypatch):
    """The unwrapped line is exactly what KMS gives for the line's context (boto3, independently)."""
    arn = aws["kms"].create_key()["KeyMetadata"]["Arn"]
    wrapped = keygen("--id", "k7", "--kms-key-id", arn)
    blob = base64.b64decode(wrapped.rsplit(":", 1)[1])
    clear = aws["kms"].decrypt(CiphertextBlob=blob, KeyId=arn, EncryptionContext={"maskflow-key-id": "k7"})["Plaintext"]
    monkeypatch.setenv("MF_PY_WRAPPED", wrapped)
    assert key_source_text("env:MF_PY_WRAPPED") == f"k7:{base64.b64encode(clear).decode()}"

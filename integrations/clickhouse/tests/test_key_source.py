"""README "The key from AWS Secrets Manager": the config row made by the Python package from a
secret (JSONEachRow data, never query text), checked by `maskflow_check` at its insert and
swapped in with EXCHANGE TABLES. Needs LocalStack (`aws_env` starts it)."""

from __future__ import annotations

import json

import pytest

from chkit import q, udf_outcomes
from testkit import SENT_MS, TEST_KEY, generated, host_transform, put_secret


def fill_next(ch, tmp_path, source: str) -> None:
    """The README's commands, the data through a file (chDB has no client's stdin)."""
    from maskflow import key_source_text

    data = tmp_path / "maskflow-config.jsonl"
    data.write_text(json.dumps({"config": json.dumps({"key_file": key_source_text(source), "cache_size": 4096})}) + "\n")
    ch.query("CREATE TABLE maskflow_config_next AS maskflow_config")
    try:
        ch.query(f"INSERT INTO maskflow_config_next SELECT config, maskflow_check(config) "
                 f"FROM file('{data}', 'JSONEachRow', 'config String')")
    except Exception:
        ch.query("DROP TABLE maskflow_config_next")
        raise
    finally:
        data.unlink()
    ch.query("EXCHANGE TABLES maskflow_config AND maskflow_config_next")
    ch.query("DROP TABLE maskflow_config_next")


def test_maskflow_config_filled_from_secrets_manager_masks_as_the_key_file(ch, aws_env, tmp_path):
    [[from_file]] = q(ch, "SELECT config FROM maskflow_config")
    fill_next(ch, tmp_path, f"aws-secretsmanager:{put_secret(aws_env, TEST_KEY.read_text())}")
    [[count, from_secret, refused]] = q(ch, "SELECT count(), any(config), any(refused) FROM maskflow_config")
    assert (count, refused) == (1, "") and json.loads(from_secret) == json.loads(from_file)
    bodies = generated(500, seed=29)
    typed, batched, as_json = udf_outcomes(ch, tmp_path, bodies, [SENT_MS] * len(bodies))
    assert typed == batched == as_json == host_transform(bodies)


def test_a_secret_holding_a_bad_key_file_is_refused_at_its_insert(ch, aws_env, tmp_path):
    """CRLF line endings: the insert fails with the line and the rule, never the key, and the
    config in use stays."""
    secret = TEST_KEY.read_text().strip().split(":", 1)[1]
    [[before]] = q(ch, "SELECT config FROM maskflow_config")
    with pytest.raises(Exception) as refused:
        fill_next(ch, tmp_path, f"aws-secretsmanager:{put_secret(aws_env, 'k1:' + secret + chr(13) + chr(10))}")
    assert "key file line 1: carriage return (CRLF line endings)" in str(refused.value)
    assert not any(secret[i:i + 8] in str(refused.value) for i in range(len(secret) - 7))
    assert q(ch, "SELECT count(), any(config) FROM maskflow_config") == [[1, before]]

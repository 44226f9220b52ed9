"""Keys and options: clear exceptions from the library, raised on the driver before any job; the
command exits 3 with one line, never a traceback or SystemExit from a library function."""

from __future__ import annotations

import pytest

import maskflow_spark
from conftest import private_key
from maskflow import ConfigError, KeyFileError, KeyFileRule
from testkit import SENT_MS, TEST_KEY


def main(capsys, *args: str) -> tuple[int, str]:
    code = maskflow_spark.main(list(args))
    err = capsys.readouterr().err
    return code, err


def test_a_group_readable_key_file_is_refused(tmp_path, capsys):
    key = private_key(tmp_path, TEST_KEY.read_text(), 0o640)
    with pytest.raises(ConfigError, match="chmod 600"):
        maskflow_spark.load_keys(str(key))
    code, err = main(capsys, "--input", str(tmp_path), "--output", str(tmp_path / "out"), "--key-file", str(key))
    assert code == 3 and "chmod 600" in err and "Traceback" not in err and len(err.splitlines()) == 1, err


def test_a_missing_key_file_is_one_line_not_a_traceback(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("MASKFLOW_KEY", raising=False)
    with pytest.raises(ConfigError, match="cannot read key file"):
        maskflow_spark.load_keys(tmp_path / "missing.key")
    code, err = main(capsys, "--input", str(tmp_path), "--output", str(tmp_path / "out"),
                     "--key-file", str(tmp_path / "missing.key"))
    assert code == 3 and "cannot read key file" in err and "Traceback" not in err, err
    with pytest.raises(ConfigError, match="MASKFLOW_KEY"):
        maskflow_spark.load_keys()


def test_a_malformed_key_file_names_its_line_and_rule_before_spark_runs(spark, tmp_path, capsys):
    crlf = TEST_KEY.read_text().replace("\n", "\r\n")
    key = private_key(tmp_path, crlf)
    code, err = main(capsys, "--input", str(tmp_path), "--output", str(tmp_path / "out"), "--key-file", str(key))
    assert code == 3 and "CRLF" in err and "line" in err, err
    df = spark.createDataFrame([(b"{}", SENT_MS)], "body binary, sent_ms bigint")
    with pytest.raises(KeyFileError) as caught:
        maskflow_spark.mask_events(df, crlf)
    assert caught.value.rule is KeyFileRule.CRLF
    with pytest.raises(ConfigError, match="key_file="):
        maskflow_spark.mask_events(df, str(key))  # a path where the text is meant


def test_columns_it_cannot_use_are_refused_before_the_job(spark):
    keys = TEST_KEY.read_text()
    clash = spark.createDataFrame([(b"{}", SENT_MS, "x")], "body binary, sent_ms bigint, user_id string")
    with pytest.raises(ValueError, match="user_id"):
        maskflow_spark.mask_events(clash, keys)
    no_body = spark.createDataFrame([("{}", SENT_MS)], "payload string, sent_ms bigint")
    with pytest.raises(ValueError, match="no body column"):
        maskflow_spark.mask_events(no_body, keys)
    no_time = spark.createDataFrame([("{}",)], "body string")
    with pytest.raises(ValueError, match="no sent time"):
        maskflow_spark.mask_events(no_time, keys)
    numeric_body = spark.createDataFrame([(1, SENT_MS)], "body int, sent_ms bigint")
    with pytest.raises(ValueError, match="not string or binary"):
        maskflow_spark.mask_events(numeric_body, keys)


def test_an_output_holding_other_files_is_refused(spark, tmp_path, capsys):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="replaced as a whole"):
        maskflow_spark.check_output(spark, str(tmp_path / "out"))
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "e.ndjson").write_text("{}\n")
    key = private_key(tmp_path, TEST_KEY.read_text())
    code, err = main(capsys, "--input", str(tmp_path / "in"), "--output", str(tmp_path / "out"), "--key-file", str(key))
    assert code == 3 and "notes.txt" in err, err
    assert (tmp_path / "out" / "notes.txt").read_text() == "mine"

"""The Python package runs the shipped module: every golden vector, the host and the independent
oracle agree, and the module it carries is the host's, byte for byte. (Keys: test_key_files.py;
inputs, typed results and errors by kind: test_types.py; the README: test_readme.py.)"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

import maskflow
from maskflow import MaskAuthenticationFailed, NotAMask, Rejection, Row, Transformer, UnmaskError

from testkit import (
    REPO,
    SENT_MS,
    TEST_KEY,
    assert_vector,
    generated,
    host_transform,
    key_text,
    maskflow_bin,
    vector_body,
)


@pytest.fixture(scope="module")
def t() -> Transformer:
    return Transformer(keys=key_text())


def test_installed_package_carries_the_hosts_module_byte_for_byte():
    shipped = (REPO / "host" / "module" / "maskflow_transform.wasm").read_bytes()
    installed = maskflow.module_bytes()
    # The installed copy, not the checkout's: pip put it in site-packages.
    assert "site-packages" in maskflow.__file__, maskflow.__file__
    assert hashlib.sha256(installed).hexdigest() == hashlib.sha256(shipped).hexdigest()
    assert (Path(maskflow.__file__).parent / "py.typed").exists()


def test_every_golden_vector(t, golden_vectors):
    bodies = [vector_body(v) for v in golden_vectors]
    times = [v["sent_timestamp_ms"] for v in golden_vectors]
    outcomes = t.transform(bodies, sent_timestamp_ms=times)
    assert len(outcomes) == len(golden_vectors)
    for v, out in zip(golden_vectors, outcomes):
        assert isinstance(out, Row if "row" in v["expected"] else Rejection), v["name"]
        assert_vector(v, out.to_json(), lambda m: t.unmask_bytes(m).value)


def test_str_and_bytes_bodies_agree(t, golden_vectors):
    v = golden_vectors[0]
    a, b = t.transform([v["body"], v["body"].encode()], sent_timestamp_ms=v["sent_timestamp_ms"])
    assert a == b and isinstance(a, Row)


def test_generated_events_equal_the_host(t):
    bodies = generated(3000)
    ours = [o.to_json() for o in t.transform(bodies, sent_timestamp_ms=SENT_MS)]
    assert ours == host_transform(bodies)
    assert sum("rejection" in o for o in ours) > 10  # the generator's malformed ones


def _oracle():
    spec = importlib.util.spec_from_file_location("oracle", REPO / "tests" / "oracle" / "oracle.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["oracle"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_independent_oracle_agrees_on_generated_events(t):
    oracle = _oracle()
    key = oracle.load_keys(TEST_KEY)[0]
    bodies = generated(500, seed=11)
    decided = 0
    for body, out in zip(bodies, t.transform(bodies, sent_timestamp_ms=SENT_MS)):
        verdict = oracle.evaluate(body, SENT_MS, key)
        if verdict.undecided:
            continue
        decided += 1
        if verdict.rejected:
            assert isinstance(out, Rejection) and out.reason == verdict.reason, body
            assert out.encrypted_body == verdict.encrypted_body
        else:
            assert out.to_json()["row"] == verdict.row, body
    assert decided > 450


def test_unmask_round_trip_and_errors(t, golden_vectors):
    v = golden_vectors[0]
    out = t.transform_one(vector_body(v), sent_timestamp_ms=SENT_MS)
    assert t.unmask(out["masked_ip"]) == json.loads(v["body"])["ip"]
    assert t.unmask_bytes(out["masked_device_id"]) == ("masked_device_id", b"593-47-5928")
    tampered = out["masked_ip"][:-2] + ("A" if out["masked_ip"][-2] != "A" else "B") + out["masked_ip"][-1]
    with pytest.raises(MaskAuthenticationFailed, match="wrong key or tampered"):
        t.unmask(tampered)
    with pytest.raises(NotAMask, match="not a mask"):
        t.unmask("hello")
    other = Transformer(keys="k1:" + "A" * 86 + "==")
    with pytest.raises(UnmaskError):
        other.unmask(out["masked_ip"])


def test_a_wrong_key_changes_every_mask(golden_vectors):
    other = Transformer(keys="k1:" + base64.b64encode(bytes(range(1, 65))).decode())
    v = golden_vectors[0]
    (out,) = other.transform([vector_body(v)], sent_timestamp_ms=SENT_MS)
    assert out["masked_ip"] != v["expected"]["row"]["masked_ip"]


def test_a_mapping_changes_the_columns():
    mapping = {"columns": [{"name": "who", "path": "user.id", "kind": "text", "required": True}]}
    t = Transformer(keys=key_text(), mapping=mapping)
    assert t.columns == ("who",)
    ok, missing = t.transform([b'{"user": {"id": " u7 "}}', b'{"user": {}}'], sent_timestamp_ms=SENT_MS)
    assert ok == {"who": "u7"}
    assert missing.reason == "missing_field"


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def test_a_million_events_in_flat_memory_and_throughput_per_core_against_the_host(t, tmp_path):
    sample = generated(100_000, seed=23)
    seen, rows, rss_at_100k = 0, 0, None
    cpu = time.process_time()
    for out in t.transform_stream((b for _ in range(10) for b in sample), SENT_MS, batch_size=1000):
        seen += 1
        rows += isinstance(out, Row)
        if seen == 100_000:
            rss_at_100k = _rss_mb()
    cpu = time.process_time() - cpu
    growth = _rss_mb() - rss_at_100k
    assert seen == 1_000_000 and rows > 950_000
    assert growth < 25, f"memory grew {growth:.1f} MB between 100k and 1M events"

    events = tmp_path / "events.ndjson"
    events.write_bytes(b"\n".join(sample) + b"\n")
    key = tmp_path / "maskflow.key"
    key.write_text(key_text())
    key.chmod(0o600)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with events.open("rb") as stdin:
        subprocess.run(
            [maskflow_bin(), "transform", "--key-file", str(key), "--sent-timestamp-ms", str(SENT_MS), "--batch-size", "1000"],
            stdin=stdin, stdout=subprocess.DEVNULL, check=True, env={**os.environ, "MASKFLOW_MODULE_CACHE": "off"},
        )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    host_cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    py_rate, host_rate = seen / cpu, len(sample) / host_cpu
    figures = (
        f"python: {py_rate:,.0f} events per CPU s over 1M (RSS +{growth:.1f} MB after 100k); "
        f"maskflow transform: {host_rate:,.0f} per CPU s ({py_rate / host_rate:.2f}x)"
    )
    print(figures)
    Path(os.environ.get("MASKFLOW_FIGURES", tmp_path / "figures.txt")).open("a").write(figures + "\n")
    assert py_rate > 0.2 * host_rate, figures

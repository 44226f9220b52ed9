"""`pip install ./integrations/python` into a brand-new virtualenv, as a user does it: the package
must install with nothing but its declared dependency and its build backend, carry the host's
module byte for byte, and give a golden vector's outcome.

The other tests run the package inside integrations/test's venv, where chDB, pyspark and pytest
could hide a missing dependency or package-data entry; this one cannot. It stays offline: the
wheels pip needs (wasmtime, and setuptools for the isolated build) are packed from the files
integrations/test's venv already has installed (each dist-info RECORD lists them), so the test
downloads nothing and pins exactly what requirements.txt pins.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

from testkit import REPO, TEST_KEY, assert_vector, golden, vector_body

# What `pip install` of the package needs: its one dependency and its build-system requirement.
WHEELHOUSE_DISTS = ("wasmtime", "setuptools")
# Written by pip when it installs, not part of a wheel.
INSTALL_MARKERS = {"INSTALLER", "REQUESTED", "direct_url.json", "RECORD"}


def pack_wheel(name: str, wheelhouse: Path) -> Path:
    """The installed distribution `name` as a wheel again: its RECORD's files (those inside
    site-packages, bytecode left out) zipped with a fresh RECORD, named by its WHEEL tags."""
    dist = metadata.distribution(name)
    info_dir = next(f.parts[0] for f in dist.files if f.parts[0].endswith(".dist-info"))
    tags = [line.split(": ", 1)[1] for line in dist.read_text("WHEEL").splitlines() if line.startswith("Tag: ")]
    # A wheel file name joins each part's tag set with dots (PEP 425 compressed tag sets).
    parts = zip(*(t.split("-") for t in tags))
    tag = "-".join(".".join(sorted(set(p))) for p in parts)
    stem = info_dir[: -len(".dist-info")]
    wheel = wheelhouse / f"{stem}-{tag}.whl"
    record = io.StringIO()
    writer = csv.writer(record, lineterminator="\n")
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as z:
        for f in dist.files:
            if f.parts[0] == ".." or "__pycache__" in f.parts:
                continue  # console scripts outside site-packages (pip writes them again); bytecode
            if f.parts[0] == info_dir and f.name in INSTALL_MARKERS:
                continue
            data = Path(dist.locate_file(f)).read_bytes()
            z.writestr(str(f), data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            writer.writerow([str(f), f"sha256={digest}", len(data)])
        writer.writerow([f"{info_dir}/RECORD", "", ""])
        z.writestr(f"{info_dir}/RECORD", record.getvalue())
    return wheel


def clean_env() -> dict[str, str]:
    """This process's environment without pip's or Python's own settings (an index URL, a
    PYTHONPATH into the checkout), so the fresh venv sees only what a user's would."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PYTHON", "VIRTUAL_ENV"))}


# Runs inside the fresh venv: one golden vector through the installed package, and what it carries.
PROBE = """
import base64, hashlib, json, sys
import maskflow
arg = json.load(sys.stdin)
t = maskflow.Transformer(keys=arg["key"])
out = t.transform([base64.b64decode(arg["body"])], sent_timestamp_ms=arg["sent_ms"])[0]
print(json.dumps({"file": maskflow.__file__, "outcome": out.to_json(),
                  "module_sha256": hashlib.sha256(maskflow.module_bytes()).hexdigest()}))
"""


def test_pip_install_into_a_fresh_venv_offline(tmp_path):
    wheelhouse = tmp_path / "wheelhouse"
    wheelhouse.mkdir()
    for name in WHEELHOUSE_DISTS:
        pack_wheel(name, wheelhouse)
    # A copy of the package: pip builds a local directory in place, and the checkout must stay clean.
    source = tmp_path / "python"
    shutil.copytree(REPO / "integrations" / "python", source,
                    ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__", "tests"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    py = venv / "bin" / "python"
    # --no-index: nothing from the network; the isolated build gets setuptools from the wheelhouse too.
    subprocess.run([py, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-input",
                    "--no-index", "--find-links", wheelhouse, source],
                   check=True, env={**clean_env(), "PIP_CONFIG_FILE": "/dev/null"})

    v = next(v for v in golden() if v["name"] == "sample_event")
    stdin = json.dumps({"body": base64.b64encode(vector_body(v)).decode(), "sent_ms": v["sent_timestamp_ms"],
                        "key": TEST_KEY.read_text()}).encode()
    # -I: isolated mode, so neither the checkout nor this venv's site-packages can be imported.
    probe = subprocess.run([py, "-I", "-c", PROBE], input=stdin, check=True, capture_output=True, cwd=tmp_path,
                           env=clean_env())
    result = json.loads(probe.stdout)

    assert result["file"].startswith(str(venv)), result["file"]
    shipped = (REPO / "host" / "module" / "maskflow_transform.wasm").read_bytes()
    assert result["module_sha256"] == hashlib.sha256(shipped).hexdigest(), "packaged module differs from host/module/"
    assert_vector(v, result["outcome"], lambda m: None)

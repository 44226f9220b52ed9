"""Keys: one specification for every engine. Every malformed key file of
tests/vectors/key_files.jsonl is refused by the package with the line and rule that the
`maskflow` CLI (the reference, a separate binary) names for the same file; the path/text
arguments, the 0600 rule and unreadable files give clear errors; nothing shows key material."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import warnings
from pathlib import Path

import pytest

from maskflow import ConfigError, KeyFileError, KeyFileRule, MaskflowError, Transformer

from testkit import REPO, key_text, maskflow_bin

FIXTURE = REPO / "tests" / "vectors" / "key_files.jsonl"


def key_bytes(seed: int) -> bytes:
    """As transform/src/keyfile.rs's tests: every 8-byte window distinct from error text."""
    return bytes(((i * 37 + seed) & 0xFF) | 0x80 for i in range(64))


KEY, OTHER = key_bytes(11), key_bytes(99)
KEY_B64, OTHER_B64 = base64.b64encode(KEY).decode(), base64.b64encode(OTHER).decode()


def expand(template: str) -> str:
    """tests/vectors/key_files.md's placeholders."""
    mangled = KEY_B64[:40] + "!" + KEY_B64[41:]
    urlsafe = KEY_B64.replace("+", "-").replace("/", "_")
    assert urlsafe != KEY_B64
    text = (template.replace("{key}", KEY_B64).replace("{other}", OTHER_B64)
            .replace("{key_mangled}", mangled).replace("{key_urlsafe}", urlsafe))
    while "{key[" in text:
        start = text.index("{key[")
        end = text.index("]}", start)
        lo, hi = text[start + 5:end].split("..")
        text = text[:start] + KEY_B64[int(lo or 0):int(hi) if hi else None] + text[end + 2:]
    assert "{" not in text, template
    return text


CASES = [json.loads(line) for line in FIXTURE.read_text().splitlines() if line.strip()]


def assert_no_key_material(shown: str, what: str) -> None:
    for secret_b64, secret in ((KEY_B64, KEY), (OTHER_B64, OTHER)):
        for i in range(len(secret_b64) - 7):
            assert secret_b64[i:i + 8] not in shown, f"{what}: shows {secret_b64[i:i + 8]!r}: {shown}"
        raw = shown.encode("utf-8", "surrogateescape")
        for i in range(len(secret) - 7):
            assert secret[i:i + 8] not in raw, f"{what}: shows raw key bytes"


def private_file(tmp_path: Path, name: str, data: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    path.chmod(0o600)
    return path


def cli_refusal(path: Path) -> tuple[int, str]:
    """`maskflow unmask` with this key file: its exit code and what it wrote."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MASKFLOW_KEY")}
    out = subprocess.run([maskflow_bin(), "unmask", "--key-file", str(path), "k1.AAAAAAAAAAAAAAAAAAAAAAAAAAAA"],
                         capture_output=True, env=env, stdin=subprocess.DEVNULL)
    return out.returncode, (out.stdout + out.stderr).decode("utf-8", "replace")


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_malformed_key_files_are_refused_as_the_cli_refuses_them(case, tmp_path):
    text = expand(case["text"])
    path = private_file(tmp_path, "maskflow.key", text)
    # The reference: the host's CLI names the same line.
    code, shown = cli_refusal(path)
    assert code == 3 and f"line {case['line']}" in shown, shown

    for source in ("text", "path"):
        with pytest.raises(KeyFileError) as caught:
            Transformer(keys=text) if source == "text" else Transformer(key_file=path)
        e = caught.value
        assert (e.line, e.rule) == (case["line"], KeyFileRule(case["rule"])), (source, str(e))
        assert isinstance(e, ConfigError) and isinstance(e, ValueError) and isinstance(e, MaskflowError)
        assert f"line {case['line']}" in str(e) and case["says"] in str(e), str(e)
        if source == "path":
            assert str(path) in str(e), "the error names the file"
        for shown in (str(e), repr(e), repr(e.args), str(e.rule)):
            assert_no_key_material(shown, f"{case['name']} ({source})")


def test_the_fixture_names_every_rule_the_package_knows():
    assert {c["rule"] for c in CASES} == {r.value for r in KeyFileRule}


def test_well_formed_key_files_load_from_text_bytes_and_paths(tmp_path):
    text = f"# rotated\nk2:{OTHER_B64}\n\nk1:{KEY_B64}\n"
    path = private_file(tmp_path, "maskflow.key", text)
    masks = set()
    for t in (Transformer(keys=text), Transformer(keys=text.encode()), Transformer(key_file=path),
              Transformer(key_file=str(path)), Transformer(key_file=os.fsencode(path))):
        assert t.columns[0] == "user_id"
        masks.add(t.transform_one(b'{"user_id": "u", "ip": "10.0.0.1"}', 1)["masked_ip"])
    assert len(masks) == 1 and masks.pop().startswith("k2."), "the first key masks"


def test_a_path_passed_as_key_text_is_refused_naming_key_file(tmp_path):
    path = private_file(tmp_path, "maskflow.key", key_text())
    for looks_like_a_path in ("maskflow.key", str(path), "~/secrets/maskflow.key", "secrets\\k1"):
        with pytest.raises(ConfigError, match="key_file="):
            Transformer(keys=looks_like_a_path)
    # A PathLike in keys= (0.1's API) still works, and says where it belongs now.
    with pytest.warns(DeprecationWarning, match="key_file="):
        assert Transformer(keys=path).columns[0] == "user_id"


def test_keys_are_given_in_exactly_one_form(tmp_path):
    path = private_file(tmp_path, "maskflow.key", key_text())
    with pytest.raises(TypeError, match="not both"):
        Transformer(keys=key_text(), key_file=path)
    with pytest.raises(TypeError, match="key_file="):
        Transformer()
    with pytest.raises(TypeError, match="key_file= takes a path"):
        Transformer(key_file=3)


def test_a_key_file_others_can_read_is_refused(tmp_path):
    path = private_file(tmp_path, "maskflow.key", key_text())
    for mode in (0o644, 0o640, 0o604):
        path.chmod(mode)
        with pytest.raises(ConfigError, match="chmod 600"):
            Transformer(key_file=path)
    path.chmod(0o400)
    assert Transformer(key_file=path).columns[0] == "user_id"


def test_unreadable_and_non_utf8_key_files_are_clear_errors(tmp_path):
    with pytest.raises(ConfigError, match="cannot read key file .*No such file"):
        Transformer(key_file=tmp_path / "missing.key")
    line = f"k1:{KEY_B64}\n".encode()
    path = private_file(tmp_path, "latin1.key", line[:3] + b"\xff" + line[3:])
    for make in (lambda: Transformer(key_file=path), lambda: Transformer(keys=path.read_bytes())):
        with pytest.raises(ConfigError, match="not UTF-8") as caught:
            make()
        assert_no_key_material(str(caught.value), "not UTF-8")


def test_no_key_line_and_a_bad_mapping_are_config_errors_not_key_file_errors():
    for text in ("# only a comment\n", "\n\n"):
        with pytest.raises(ConfigError, match="no key") as caught:
            Transformer(keys=text)
        assert not isinstance(caught.value, KeyFileError)
    with pytest.raises(ConfigError, match="mapping") as caught:
        Transformer(keys=key_text(), mapping={"columns": "nope"})
    assert not isinstance(caught.value, KeyFileError)


def test_the_key_text_never_reaches_a_warning_or_an_exception_chain():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning at all for text keys
        with pytest.raises(KeyFileError) as caught:
            Transformer(keys=f"k1:{KEY_B64} \n")
    e = caught.value
    for linked in (e.__cause__, e.__context__):
        assert_no_key_material(repr(linked), "a chained exception")

"""Key files, parsed exactly as the host does (host/src/cli/module.rs, transform/src/mask.rs).

One ``id:base64`` per line (a bare ``base64`` line means id ``k1``); ``#`` starts a comment;
blank lines are skipped. The first key masks, all of them unmask. The module itself checks each
key (base64, 64 bytes, id of 1-16 ``a-z0-9``), so the errors are the host's own words.
Keep this file in step with ``Key::parse_key_file``.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from ._errors import ConfigError


def parse_key_file(text: str) -> list[dict[str, str]]:
    """The ``keys`` list of the module's config (ABI.md ``init``) for a key file's text."""
    keys = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key_id, sep, b64 = line.partition(":")
        if sep:
            keys.append({"id": key_id.strip(), "key": b64.strip()})
        else:
            keys.append({"id": "k1", "key": line})
    if not keys:
        raise ConfigError(
            "no key given: pass a key file's text or path (create one with `maskflow keygen`)"
        )
    return keys


def read_key_file(path: os.PathLike[str]) -> str:
    """A key file's text, refused when group or others may read it (as the host refuses it)."""
    p = Path(path)
    try:
        mode = p.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigError(
                f"key file {p} has mode {stat.S_IMODE(mode):o}: group or others can read the key; "
                f"chmod 600 {p}"
            )
        return p.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot read key file {p}: {e.strerror}") from None

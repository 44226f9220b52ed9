"""Where the key file's text comes from: a path (``key_file=``) or the text itself (``keys=``).

Nothing here parses the text: the module does, with the host's own ``Key::parse_key_file``
(ABI.md ``init``, ``"key_file"``), so every engine refuses the same files with the same line
numbers and rules. This file only reads a path the way the host does (refused when group or
others may read it, as ``chmod 600`` fixes) and refuses a path passed where text is meant.
"""

from __future__ import annotations

import os
import stat
import warnings
from pathlib import Path
from typing import Union

from ._errors import ConfigError

KeyPath = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]
KeyText = Union[str, bytes]


def read_key_file(path: KeyPath) -> str:
    """A key file's text, refused (``ConfigError``) when group or others may read it, when it
    cannot be read, or when it is not UTF-8. Nothing of its content is ever in an error."""
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise TypeError(f"key_file= takes a path (str or os.PathLike), not {type(path).__name__}")
    p = Path(os.fsdecode(path))
    try:
        with p.open("rb") as f:
            mode = os.fstat(f.fileno()).st_mode
            if mode & (stat.S_IRWXG | stat.S_IRWXO):
                raise ConfigError(
                    f"key file {p} has mode {stat.S_IMODE(mode):o}: group or others can read the "
                    f"key; chmod 600 {p}"
                )
            data = f.read()
    except OSError as e:
        raise ConfigError(f"cannot read key file {p}: {e.strerror}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"key file {p} is not UTF-8 text: it must hold `id:base64` lines") from None


def key_text(keys: KeyText | None, key_file: KeyPath | None) -> tuple[str, Path | None]:
    """The key file's text and the path it came from (``None`` for ``keys=``), from exactly one
    of the two arguments."""
    if keys is not None and key_file is not None:
        raise TypeError("give keys= (a key file's text) or key_file= (its path), not both")
    if key_file is not None:
        return read_key_file(key_file), Path(os.fsdecode(key_file))
    if keys is None:
        raise TypeError(
            "no key: give key_file= (the path of a key file, mode 0600) or keys= (its text); "
            "create one with `maskflow keygen --out maskflow.key`"
        )
    if isinstance(keys, os.PathLike):
        # 0.1 took a path in keys=; a PathLike cannot be anything else, so it still works.
        warnings.warn("pass a key file's path as key_file=, not keys=", DeprecationWarning, stacklevel=3)
        return read_key_file(keys), Path(os.fsdecode(keys))
    if isinstance(keys, (bytes, bytearray)):
        try:
            keys = bytes(keys).decode("utf-8")
        except UnicodeDecodeError:
            raise ConfigError("keys= is not UTF-8 text: it must hold `id:base64` lines") from None
    if not isinstance(keys, str):
        raise TypeError(f"keys= takes a key file's text (str), not {type(keys).__name__}")
    if looks_like_path(keys):
        raise ConfigError(
            "keys= takes a key file's text, and this looks like a path: pass "
            "key_file=<path> (the file must be mode 0600)"
        )
    return keys, None


def looks_like_path(text: str) -> bool:
    """Whether a ``keys=`` text is a path rather than a key file's text: one line without `:`
    (every ``id:base64`` line has one; a bare base64 line has none) that names an existing
    file, or holds what neither base64 nor a key id ever does (``.``, ``~``, ``\\``). A path
    without any of them (``/secrets/key``) reaches the module, which refuses it as a key line."""
    line = text.strip()
    if not line or "\n" in line or ":" in line:
        return False
    return os.path.exists(line) or any(c in line for c in ".~\\")

"""``Transformer``: the module configured with keys (and a mapping), typed in and out."""

from __future__ import annotations

import json
import struct
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from . import _abi
from ._errors import (
    ConfigError,
    KeyFileError,
    KeyFileRule,
    MaskAuthenticationFailed,
    ModuleError,
    NotAMask,
    NotText,
    UnknownKeyId,
    UnmaskError,
)
from ._inputs import Body, body_bytes, one_body, sent_times
from ._keys import KeyPath, KeyText, key_text
from ._outcomes import DateCache, Outcome, Reason, Rejection, Row, Unmasked, column_kinds

_NULL = 0xFFFFFFFF
_U32 = struct.Struct("<I")
_MESSAGE_HEAD = struct.Struct("<I")  # u32 id length (ids are empty: outcomes come back in order)
_SENT = struct.Struct("<qI")  # i64 sent_timestamp_ms, u32 body length

_UNMASK_ERRORS = {
    _abi.STATUS_NOT_A_MASK: NotAMask,
    _abi.STATUS_UNKNOWN_KEY_ID: UnknownKeyId,
    _abi.STATUS_AUTHENTICATION_FAILED: MaskAuthenticationFailed,
}


class Transformer:
    """One instance of the module, configured with a key file and a mapping.

    The keys, in exactly one form: ``key_file=`` a path (``str`` or ``os.PathLike``) to a key
    file, refused when group or others can read it (``chmod 600``); or ``keys=`` the text of one
    (``str`` or UTF-8 ``bytes``; a value that looks like a path is refused, naming ``key_file=``).
    Either way the module parses it with the host's own rules: a line that breaks one raises
    :class:`KeyFileError` (``.line``, ``.rule``). ``mapping``: ABI.md's mapping object
    (``None``: the ``user_logins`` default). ``mask_cache``: slots of each masked column's cache.

    Not thread-safe: use one per thread (or per Spark task).
    """

    def __init__(
        self,
        keys: KeyText | None = None,
        mapping: Mapping[str, Any] | None = None,
        mask_cache: int = 4096,
        *,
        key_file: KeyPath | None = None,
    ) -> None:
        text, source = key_text(keys, key_file)
        config: dict[str, Any] = {"key_file": text, "cache_size": mask_cache}
        if mapping is not None:
            config["mapping"] = dict(mapping)
        self._module = _abi.Instance()
        try:
            payload = self._module.call(self._module.init, json.dumps(config).encode(), wipe=True)
        except _abi.Failure as f:
            raise _config_error(f, source) from None
        (n,) = _U32.unpack_from(payload, 0)
        pos, columns = 4, []
        for _ in range(n):
            (length,) = _U32.unpack_from(payload, pos)
            columns.append(bytes(payload[pos + 4 : pos + 4 + length]).decode())
            pos += 4 + length
        self.columns: tuple[str, ...] = tuple(columns)
        kinds = column_kinds(mapping, self.columns)
        self._dates = DateCache()
        self._typed = [
            (i, int) if kind == "version" else (i, self._dates.__getitem__)
            for i, kind in enumerate(kinds)
            if kind in ("version", "sent_date")
        ]

    def transform(self, bodies: Iterable[Body], sent_timestamp_ms: Any = None) -> list[Outcome]:
        """One :class:`Row` or :class:`Rejection` per body, in order, from one module call.

        ``bodies``: ``str`` or ``bytes`` each, in a list, tuple, numpy or pyarrow array (one
        ``str`` or ``bytes`` alone is refused: use :meth:`transform_one`). ``sent_timestamp_ms``
        (it sets ``create_date``): ms since the epoch as an ``int`` (numpy and pyarrow integers
        too) or a ``datetime`` with a zone, one for all or one per body; ``None``: now.
        """
        raw = body_bytes(bodies)
        times = sent_times(sent_timestamp_ms, len(raw))
        parts = [_U32.pack(len(raw))]
        for body, sent in zip(raw, times):
            parts.append(_MESSAGE_HEAD.pack(0))
            parts.append(_SENT.pack(sent, len(body)))
            parts.append(body)
        try:
            payload = self._module.call(self._module.transform_batch, b"".join(parts))
        except _abi.Failure as f:
            raise ModuleError(f"transform_batch failed: {f.message}") from None
        return self._decode(payload, len(raw))

    def transform_one(self, body: Body, sent_timestamp_ms: Any = None) -> Outcome:
        """The :class:`Row` or :class:`Rejection` of one body."""
        return self.transform([one_body(body)], sent_timestamp_ms)[0]

    def transform_stream(
        self,
        bodies: Iterable[Body],
        sent_timestamp_ms: Any = None,
        batch_size: int = 1000,
    ) -> Iterator[Outcome]:
        """``transform`` over any iterable, ``batch_size`` bodies per module call, in flat memory.
        ``sent_timestamp_ms``: one time for all, or ``None`` (now, per batch)."""
        if isinstance(bodies, (str, bytes, bytearray, memoryview)):
            body_bytes(bodies)  # refused, with the same message as transform's
        batch: list[Body] = []
        for body in bodies:
            batch.append(body)
            if len(batch) >= batch_size:
                yield from self.transform(batch, sent_timestamp_ms)
                batch = []
        if batch:
            yield from self.transform(batch, sent_timestamp_ms)

    def _decode(self, buf: bytearray, expected: int) -> list[Outcome]:
        unpack = _U32.unpack_from
        columns, typed = self.columns, self._typed
        try:
            (count,) = unpack(buf, 0)
            if count != expected:
                raise ModuleError(f"the module returned {count} outcomes for {expected} messages")
            pos = 4
            out: list[Outcome] = []
            for _ in range(count):
                tag = buf[pos]
                pos += 1
                if tag == 0:
                    values: list[Any] = []
                    for _ in columns:
                        (length,) = unpack(buf, pos)
                        pos += 4
                        if length == _NULL:
                            values.append(None)
                        else:
                            values.append(buf[pos : pos + length].decode())
                            pos += length
                    for i, convert in typed:
                        if values[i] is not None:
                            values[i] = convert(values[i])
                    out.append(Row(dict(zip(columns, values))))
                elif tag == 1:
                    fields = []
                    for _ in range(3):
                        (length,) = unpack(buf, pos)
                        fields.append(buf[pos + 4 : pos + 4 + length].decode())
                        pos += 4 + length
                    reason, message, encrypted = fields
                    out.append(Rejection(Reason(reason), message, encrypted))
                else:
                    raise ModuleError(f"unknown outcome tag {tag}")
            return out
        except (struct.error, IndexError, ValueError) as e:  # ValueError: not UTF-8, a new reason
            raise ModuleError(f"malformed result from the module: {e}") from None

    def unmask(self, mask: str | bytes) -> str:
        """The clear value of a mask made by any loaded key, as text. Raises :class:`NotAMask`,
        :class:`UnknownKeyId` or :class:`MaskAuthenticationFailed` (all :class:`UnmaskError`),
        and :class:`NotText` for a value that is not UTF-8 (a rejected body can be any bytes:
        :meth:`unmask_bytes` returns them)."""
        column, value = self.unmask_bytes(mask)
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise NotText(
                f"the clear value ({column}) is not UTF-8 text: unmask_bytes() returns its bytes"
            ) from None

    def unmask_bytes(self, mask: str | bytes) -> Unmasked:
        """``(column, clear bytes)``: the column is the masked column's name, or ``raw_body`` for
        a rejection's ``encrypted_body``."""
        if isinstance(mask, str):
            data = mask.encode("utf-8", "surrogatepass")
        elif isinstance(mask, (bytes, bytearray, memoryview)):
            data = bytes(mask)
        else:
            raise TypeError(f"a mask is a str, not {type(mask).__name__}")
        try:
            payload = self._module.call(self._module.unmask, data)
        except _abi.Failure as f:
            raise _UNMASK_ERRORS.get(f.status, UnmaskError)(f.message) from None
        (length,) = _U32.unpack_from(payload, 0)
        return Unmasked(payload[4 : 4 + length].decode(), bytes(payload[4 + length :]))


def _config_error(failure: _abi.Failure, source: Path | None) -> Exception:
    """The exception for a refused ``init``: the source (a key file's path) named where known."""
    where = f"{source}: " if source is not None else ""
    if failure.status == _abi.STATUS_KEY_FILE and failure.detail is not None:
        rule: KeyFileRule | str = str(failure.detail["rule"])
        try:
            rule = KeyFileRule(rule)
        except ValueError:
            pass  # a rule newer than this package: kept as its code
        return KeyFileError(where + failure.message, int(failure.detail["line"]), rule)
    if failure.status == _abi.STATUS_CONFIG_REFUSED:
        return ConfigError(where + failure.message)
    return ModuleError(f"init failed: {failure.message}")

"""The shipped module driven through ABI v1 (transform/ABI.md) with wasmtime."""

from __future__ import annotations

import json
import os
import struct
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, Union

import wasmtime

from ._errors import ConfigError, ModuleError, UnmaskError
from ._keys import parse_key_file, read_key_file

ABI_VERSION = 1
_NULL = 0xFFFFFFFF
_U32 = struct.Struct("<I")
_MESSAGE_HEAD = struct.Struct("<I")  # u32 id length (ids are empty: outcomes come back in order)
_SENT = struct.Struct("<qI")  # i64 sent_timestamp_ms, u32 body length

Body = Union[str, bytes, bytearray, memoryview]

_compiled: tuple[wasmtime.Engine, wasmtime.Module] | None = None
_compile_lock = threading.Lock()


def module_bytes() -> bytes:
    """The module this package carries: a byte-identical copy of the host's ``host/module/``."""
    return (resources.files(__package__) / "maskflow_transform.wasm").read_bytes()


def _engine_and_module() -> tuple[wasmtime.Engine, wasmtime.Module]:
    # Compiling costs about 0.2 CPU s: once per process, shared by every Transformer.
    global _compiled
    with _compile_lock:
        if _compiled is None:
            engine = wasmtime.Engine()
            _compiled = (engine, wasmtime.Module(engine, module_bytes()))
        return _compiled


@dataclass(frozen=True)
class Outcome:
    """One message's result: exactly one of ``row`` and ``rejection`` is set.

    ``row``: column name -> text in PostgreSQL input syntax, or ``None`` for NULL.
    ``rejection``: ``{"reason": <ABI reason code>, "message": ..., "encrypted_body": "k1...."}``.
    """

    row: dict[str, str | None] | None = None
    rejection: dict[str, str] | None = None

    def to_json(self) -> dict[str, Any]:
        """The golden vectors' and ``maskflow transform``'s shape."""
        return {"row": self.row} if self.row is not None else {"rejection": self.rejection}


class Transformer:
    """One instance of the module, configured with ``keys`` (and a ``mapping``).

    ``keys``: a key file's text (``id:base64`` lines), or a path (``os.PathLike``) to one, which
    must not be readable by group or others. ``mapping``: ABI.md's mapping object (``None``: the
    ``user_logins`` default). ``mask_cache``: slots of each masked column's cache of recent masks.

    Not thread-safe: use one per thread (or per Spark task).
    """

    def __init__(
        self,
        keys: str | os.PathLike[str],
        mapping: Mapping[str, Any] | None = None,
        mask_cache: int = 4096,
    ) -> None:
        text = keys if isinstance(keys, str) else read_key_file(keys)
        config: dict[str, Any] = {"keys": parse_key_file(text), "cache_size": int(mask_cache)}
        if mapping is not None:
            config["mapping"] = dict(mapping)
        engine, module = _engine_and_module()
        self._store = wasmtime.Store(engine)
        try:
            instance = wasmtime.Instance(self._store, module, [])
        except wasmtime.WasmtimeError as e:
            raise ModuleError(f"cannot instantiate the module: {e}") from None
        exports = instance.exports(self._store)
        self._memory: wasmtime.Memory = exports["memory"]  # type: ignore[assignment]
        self._alloc = exports["alloc"]
        self._dealloc = exports["dealloc"]
        self._init = exports["init"]
        self._transform_batch = exports["transform_batch"]
        self._unmask = exports["unmask"]
        version = exports["abi_version"](self._store)  # type: ignore[operator]
        if version != ABI_VERSION:
            raise ModuleError(f"the module speaks ABI v{version}; this package speaks v{ABI_VERSION}")
        payload = self._call(self._init, json.dumps(config).encode(), ConfigError)
        (n,) = _U32.unpack_from(payload, 0)
        pos, columns = 4, []
        for _ in range(n):
            (length,) = _U32.unpack_from(payload, pos)
            columns.append(bytes(payload[pos + 4 : pos + 4 + length]).decode())
            pos += 4 + length
        self.columns: tuple[str, ...] = tuple(columns)

    def _call(self, export: Any, data: bytes, error: type[Exception]) -> bytearray:
        """Copies ``data`` in, calls ``export``, and returns the ok payload (or raises ``error``
        with the module's message)."""
        store = self._store
        ptr = self._alloc(store, len(data)) if data else 0
        if data and ptr == 0:
            raise ModuleError(f"the module has no memory for a {len(data)}-byte input")
        try:
            if data:
                self._memory.write(store, data, ptr)
            packed = export(store, ptr, len(data))
        except wasmtime.Trap as e:
            raise ModuleError(f"the module trapped: {e.message}") from None
        finally:
            if data:
                try:
                    self._dealloc(store, ptr, len(data))
                except wasmtime.Trap:
                    pass  # the instance is broken; the error above says so
        packed &= 0xFFFFFFFFFFFFFFFF
        rptr, rlen = packed >> 32, packed & 0xFFFFFFFF
        if rlen == 0:
            raise ModuleError("the module returned an empty result")
        # A copy: the module's buffer is only valid until the next call.
        result = self._memory.read(store, rptr, rptr + rlen)
        if result[0] != 0:
            raise error(result[1:].decode("utf-8", "replace"))
        del result[:1]  # O(1) for a bytearray
        return result

    def transform(
        self,
        bodies: Sequence[Body],
        sent_timestamp_ms: int | Sequence[int] | None = None,
    ) -> list[Outcome]:
        """One outcome per body, in order, from one module call.

        ``sent_timestamp_ms``: one time for all (ms since the epoch; it sets ``create_date``), one
        per body, or ``None`` for now.
        """
        if sent_timestamp_ms is None:
            sent_timestamp_ms = int(time.time() * 1000)
        times = (
            [int(sent_timestamp_ms)] * len(bodies)
            if isinstance(sent_timestamp_ms, int)
            else [int(t) for t in sent_timestamp_ms]
        )
        if len(times) != len(bodies):
            raise ValueError(f"{len(bodies)} bodies but {len(times)} sent timestamps")
        parts = [_U32.pack(len(bodies))]
        for body, sent in zip(bodies, times):
            raw = body.encode() if isinstance(body, str) else bytes(body)
            if not -(2**63) <= sent < 2**63:
                sent = -1  # outside i64: the module rejects it as invalid_timestamp
            parts.append(_MESSAGE_HEAD.pack(0))
            parts.append(_SENT.pack(sent, len(raw)))
            parts.append(raw)
        payload = self._call(self._transform_batch, b"".join(parts), ModuleError)
        return self._decode(payload, len(bodies))

    def transform_stream(
        self,
        bodies: Iterable[Body],
        sent_timestamp_ms: int | None = None,
        batch_size: int = 1000,
    ) -> Iterator[Outcome]:
        """``transform`` over any iterable, ``batch_size`` bodies per module call, in flat memory."""
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
        try:
            (count,) = unpack(buf, 0)
            if count != expected:
                raise ModuleError(f"the module returned {count} outcomes for {expected} messages")
            pos = 4
            columns = self.columns
            out: list[Outcome] = []
            for _ in range(count):
                tag = buf[pos]
                pos += 1
                if tag == 0:
                    row: dict[str, str | None] = {}
                    for name in columns:
                        (length,) = unpack(buf, pos)
                        pos += 4
                        if length == _NULL:
                            row[name] = None
                        else:
                            row[name] = buf[pos : pos + length].decode()
                            pos += length
                    out.append(Outcome(row=row))
                elif tag == 1:
                    fields = []
                    for _ in range(3):
                        (length,) = unpack(buf, pos)
                        fields.append(buf[pos + 4 : pos + 4 + length].decode())
                        pos += 4 + length
                    reason, message, encrypted = fields
                    out.append(
                        Outcome(
                            rejection={
                                "reason": reason,
                                "message": message,
                                "encrypted_body": encrypted,
                            }
                        )
                    )
                else:
                    raise ModuleError(f"unknown outcome tag {tag}")
            return out
        except (struct.error, IndexError, UnicodeDecodeError) as e:
            raise ModuleError(f"malformed result from the module: {e}") from None

    def unmask(self, mask: str) -> str:
        """The clear value of a mask (or of a rejection's ``encrypted_body``) made by any loaded
        key. Raises ``UnmaskError`` for a wrong key, a tampered value or not a mask."""
        return self.unmask_bytes(mask)[1].decode("utf-8", "replace")

    def unmask_bytes(self, mask: str) -> tuple[str, bytes]:
        """``(column, clear bytes)``: the column is the masked column's name, or ``raw_body``."""
        payload = self._call(self._unmask, mask.encode(), UnmaskError)
        (length,) = _U32.unpack_from(payload, 0)
        return payload[4 : 4 + length].decode(), bytes(payload[4 + length :])

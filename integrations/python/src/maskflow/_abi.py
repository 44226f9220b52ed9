"""The shipped module, one instance per :class:`Instance`, driven through ABI v1
(transform/ABI.md) with wasmtime: memory in and out, and the result's status byte by kind."""

from __future__ import annotations

import json
import threading
from importlib import resources
from typing import Any

import wasmtime

from ._errors import ModuleError

ABI_VERSION = 1

# Result status bytes (ABI.md "Status codes"; transform/src/wire.rs `STATUS_*`).
STATUS_OK = 0
STATUS_ERROR = 1
STATUS_CONFIG_REFUSED = 2
STATUS_NOT_A_MASK = 3
STATUS_UNKNOWN_KEY_ID = 4
STATUS_AUTHENTICATION_FAILED = 5
STATUS_KEY_FILE = 6

_compiled: tuple[wasmtime.Engine, wasmtime.Module] | None = None
_compile_lock = threading.Lock()


def module_bytes() -> bytes:
    """The module this package carries: a byte-identical copy of the host's ``host/module/``."""
    return (resources.files(__package__) / "maskflow_transform.wasm").read_bytes()


def _engine_and_module() -> tuple[wasmtime.Engine, wasmtime.Module]:
    # Compiling costs about 0.2 CPU s: once per process, shared by every instance.
    global _compiled
    with _compile_lock:
        if _compiled is None:
            engine = wasmtime.Engine()
            _compiled = (engine, wasmtime.Module(engine, module_bytes()))
        return _compiled


class Failure(Exception):
    """A call's result with a non-zero status: ``status`` and the text after it (for status 6,
    ``detail`` holds its ``{line, rule, message}`` object)."""

    def __init__(self, status: int, message: str, detail: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.detail = detail


class Instance:
    """One instance of the module and its exports."""

    def __init__(self) -> None:
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
        self.init = exports["init"]
        self.transform_batch = exports["transform_batch"]
        self.unmask = exports["unmask"]
        version = exports["abi_version"](self._store)  # type: ignore[operator]
        if version != ABI_VERSION:
            raise ModuleError(f"the module speaks ABI v{version}; this package speaks v{ABI_VERSION}")

    def call(self, export: Any, data: bytes, wipe: bool = False) -> bytearray:
        """Copies ``data`` in, calls ``export`` and returns the ok payload, or raises
        :class:`Failure` with the result's status (or ``ModuleError`` for a trap). ``wipe``:
        zero the input in module memory before freeing it (it holds keys), as the host does."""
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
                    if wipe:
                        self._memory.write(store, bytes(len(data)), ptr)
                    self._dealloc(store, ptr, len(data))
                except wasmtime.Trap:
                    pass  # the instance is broken; the error above says so
        packed &= 0xFFFFFFFFFFFFFFFF
        rptr, rlen = packed >> 32, packed & 0xFFFFFFFF
        if rlen == 0:
            raise ModuleError("the module returned an empty result")
        # A copy: the module's buffer is only valid until the next call.
        result = self._memory.read(store, rptr, rptr + rlen)
        status = result[0]
        if status != STATUS_OK:
            raise _failure(status, bytes(result[1:]))
        del result[:1]  # O(1) for a bytearray
        return result


def _failure(status: int, rest: bytes) -> Failure:
    text = rest.decode("utf-8", "replace")
    if status == STATUS_KEY_FILE:
        try:
            detail = json.loads(text)
            return Failure(status, str(detail["message"]), detail)
        except (ValueError, KeyError, TypeError):
            return Failure(STATUS_ERROR, "status 6 without its {line, rule, message} object")
    return Failure(status, text)

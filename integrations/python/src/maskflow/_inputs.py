"""Bodies and sent times in the forms users have them: lists, numpy and pyarrow arrays, numpy
and pyarrow scalars, ``datetime``s. Anything else is a ``TypeError``/``ValueError`` that names
the argument and the position, never the value (a body is PII)."""

from __future__ import annotations

import datetime
import math
import operator
import time
from collections.abc import Iterable
from typing import Any, Union

Body = Union[str, bytes, bytearray, memoryview]
# i64 range of the ABI's sent_timestamp_ms; outside it the module is given -1 (invalid_timestamp).
_I64 = range(-(2**63), 2**63)
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
_MS = datetime.timedelta(milliseconds=1)


def _plain(values: Any) -> Any:
    """A pyarrow array (``to_pylist``) or numpy array (``tolist``) as a list; anything else as is."""
    for method in ("to_pylist", "tolist"):
        convert = getattr(values, method, None)
        if callable(convert) and not isinstance(values, (str, bytes)):
            return convert()
    return values


def body_bytes(bodies: Iterable[Body], argument: str = "bodies") -> list[bytes]:
    """Each body as bytes. One ``str`` or ``bytes`` where a sequence is meant is refused: it
    would otherwise be split into one body per character."""
    if isinstance(bodies, (str, bytes, bytearray, memoryview)):
        raise TypeError(
            f"{argument} is a sequence of bodies, not one {type(bodies).__name__}: "
            "pass [body], or use transform_one(body)"
        )
    out = []
    for i, body in enumerate(_plain(bodies)):
        out.append(one_body(body, f"{argument}[{i}]"))
    return out


def one_body(body: Any, argument: str = "body") -> bytes:
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        # A lone surrogate cannot be UTF-8: passed through, the module rejects it as body_not_utf8.
        return body.encode("utf-8", "surrogatepass")
    if isinstance(body, (bytearray, memoryview)):
        return bytes(body)
    as_py = getattr(body, "as_py", None)  # a pyarrow scalar
    if callable(as_py) and as_py() is not None:
        return one_body(as_py(), argument)
    raise TypeError(f"{argument} is {_named(body)}, not str or bytes")


def sent_times(sent_timestamp_ms: Any, count: int) -> list[int]:
    """One sent time (ms since the epoch) per body: from one time for all, one per body, or
    ``None`` (now)."""
    if sent_timestamp_ms is None:
        return [int(time.time() * 1000)] * count
    if isinstance(sent_timestamp_ms, (str, bytes)):
        raise TypeError(
            f"sent_timestamp_ms is a {type(sent_timestamp_ms).__name__}: give ms since the epoch "
            "(int), a datetime with a zone, or one of those per body"
        )
    if _is_scalar(sent_timestamp_ms):
        return [sent_ms(sent_timestamp_ms)] * count
    times = [sent_ms(t, f"sent_timestamp_ms[{i}]") for i, t in enumerate(_plain(sent_timestamp_ms))]
    if len(times) != count:
        raise ValueError(f"{count} bodies but {len(times)} sent timestamps")
    return times


def _is_scalar(value: Any) -> bool:
    if isinstance(value, (int, float, datetime.datetime)):
        return True
    shape = getattr(value, "shape", None)  # a numpy scalar or 0-d array
    if shape == ():
        return True
    return hasattr(value, "as_py") and not hasattr(value, "to_pylist")  # a pyarrow scalar


def sent_ms(value: Any, argument: str = "sent_timestamp_ms") -> int:
    """ms since the epoch of an integer (Python, numpy, pyarrow), an integral float, or a
    ``datetime`` with a zone. Out of the i64 range gives -1, which the module rejects as
    ``invalid_timestamp``."""
    as_py = getattr(value, "as_py", None)
    if callable(as_py):
        value = as_py()
    elif getattr(value, "shape", None) == () and hasattr(value, "item"):
        value = value.item()  # a numpy scalar
    if isinstance(value, bool) or value is None:
        raise TypeError(f"{argument} is {_named(value)}: give ms since the epoch (int) or a datetime")
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"{argument} is a datetime without a zone: give it one (tzinfo)")
        ms = (value - _EPOCH) // _MS
    elif isinstance(value, float):
        if not (math.isfinite(value) and value.is_integer()):
            raise ValueError(f"{argument} is a float that is not a whole number of ms")
        ms = int(value)
    else:
        try:
            ms = operator.index(value)
        except TypeError:
            raise TypeError(
                f"{argument} is {_named(value)}: give ms since the epoch (int) or a datetime"
            ) from None
    return ms if ms in _I64 else -1


def _named(value: Any) -> str:
    return "None" if value is None else f"a {type(value).__module__}.{type(value).__qualname__}".replace(
        "builtins.", ""
    )

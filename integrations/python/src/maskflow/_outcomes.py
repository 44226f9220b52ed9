"""What a transform gives back: a typed :class:`Row` or a :class:`Rejection` per message."""

from __future__ import annotations

import datetime
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, NamedTuple, Union

Value = Union[str, int, datetime.date, None]


class Reason(str, Enum):
    """Why a message was rejected: the codes of Rust's ``Reason`` (transform/src/reason.rs,
    ABI.md "Reason codes"), plus the two the maskflow host adds for its own rejections."""

    BODY_TOO_LARGE = "body_too_large"
    BODY_NOT_UTF8 = "body_not_utf8"
    BODY_NOT_JSON = "body_not_json"
    BODY_NOT_OBJECT = "body_not_object"
    NESTING_TOO_DEEP = "nesting_too_deep"
    DUPLICATE_KEY = "duplicate_key"
    INVALID_TIMESTAMP = "invalid_timestamp"
    MISSING_FIELD = "missing_field"
    WRONG_TYPE = "wrong_type"
    INVALID_CHARACTER = "invalid_character"
    VALUE_TOO_LONG = "value_too_long"
    INVALID_IP = "invalid_ip"
    INVALID_VERSION = "invalid_version"
    MASK_TOO_LONG = "mask_too_long"
    # The host's own: a message the module failed on alone, a row the database refused.
    MODULE_FAILED = "module_failed"
    SINK_REFUSED = "sink_refused"

    __str__ = str.__str__


@dataclass(frozen=True)
class Rejection:
    """A message that cannot become a row. ``message`` names the field and the rule, never the
    value; the body is kept only encrypted (``encrypted_body``: ``Transformer.unmask_bytes``)."""

    reason: Reason
    message: str
    encrypted_body: str

    def to_json(self) -> dict[str, Any]:
        """The golden vectors' and ``maskflow transform``'s shape."""
        return {
            "rejection": {
                "reason": self.reason.value,
                "message": self.message,
                "encrypted_body": self.encrypted_body,
            }
        }


# eq=False: ``Mapping``'s equality, so a row equals a dict of the same columns and values.
@dataclass(frozen=True, eq=False)
class Row(Mapping[str, Value]):
    """One row, read like a ``dict``: ``row["masked_ip"]``. Values are typed by column kind:
    ``text`` and ``ip`` columns (masks included) are ``str``, ``version`` an ``int``
    (``2003000`` for ``2.3.0``), ``sent_date`` a ``datetime.date``; SQL NULL is ``None``."""

    columns: dict[str, Value]

    def __getitem__(self, name: str) -> Value:
        return self.columns[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.columns)

    def __len__(self) -> int:
        return len(self.columns)

    def to_json(self) -> dict[str, Any]:
        """The golden vectors' and ``maskflow transform``'s shape: every value as the text the
        module wrote (PostgreSQL input syntax)."""
        return {"row": {name: _text(v) for name, v in self.columns.items()}}


Outcome = Union[Row, Rejection]


class Unmasked(NamedTuple):
    """What ``unmask_bytes`` recovered: the masked column's name (``raw_body`` for a rejected
    message's encrypted body) and the clear bytes."""

    column: str
    value: bytes


def _text(value: Value) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, datetime.date):
        return value.isoformat()
    return str(value)


# The default mapping's column kinds (transform/ABI.md "Default mapping").
USER_LOGINS_KINDS = {
    "user_id": "text",
    "device_type": "text",
    "masked_ip": "ip",
    "masked_device_id": "text",
    "locale": "text",
    "app_version": "version",
    "create_date": "sent_date",
}


def column_kinds(mapping: Mapping[str, Any] | None, columns: tuple[str, ...]) -> list[str]:
    """The kind of each column the module reported, from the mapping it was given (which it
    accepted, so its shape is known good)."""
    if mapping is None:
        return [USER_LOGINS_KINDS[name] for name in columns]
    kinds = {c["name"]: c.get("kind", "text") for c in mapping["columns"]}
    return [kinds[name] for name in columns]


class DateCache(dict):
    """``datetime.date`` of a module's ``YYYY-MM-DD`` cell; a batch holds few distinct dates."""

    def __missing__(self, text: str) -> datetime.date:
        if len(self) >= 4096:
            self.clear()  # bounded: times spread over many days only cost the parse
        value = self[text] = datetime.date.fromisoformat(text)
        return value

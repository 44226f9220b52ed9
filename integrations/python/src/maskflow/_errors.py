"""Exceptions: one class per kind of failure the module reports (transform/ABI.md "Status codes").

As ``pyarrow`` maps statuses to ``ArrowInvalid(ValueError, ArrowException)``, a refused input is
both a ``ValueError`` and a ``MaskflowError``. None of them ever carries key material or a clear
value; their messages are the module's own, which never do either.
"""

from __future__ import annotations

from enum import Enum


class MaskflowError(Exception):
    """Base class of every error this package raises."""


class ConfigError(MaskflowError, ValueError):
    """The keys or the mapping were refused (ABI status 2), or a key file could not be read."""


class KeyFileRule(str, Enum):
    """Which rule of the key-file format a line breaks (README "The key file"): the module's
    ``KeyFileRule::code`` (transform/src/error.rs), the host's own rules."""

    CRLF = "crlf"
    WHITESPACE = "whitespace"
    COMMENT_AFTER_KEY = "comment_after_key"
    EXTRA_COLON = "extra_colon"
    REVERSED = "reversed"
    INVALID_ID = "invalid_id"
    DUPLICATE_ID = "duplicate_id"
    NOT_BASE64 = "not_base64"
    KEY_LENGTH = "key_length"

    __str__ = str.__str__


class KeyFileError(ConfigError):
    """A key file's line breaks a rule (ABI status 6). ``line``: its 1-based number; ``rule``: a
    :class:`KeyFileRule` (a plain ``str`` for a rule newer than this package). The message says
    how to fix it and never shows any part of the line."""

    def __init__(self, message: str, line: int, rule: KeyFileRule | str) -> None:
        super().__init__(message)
        self.line = line
        self.rule = rule


class UnmaskError(MaskflowError, ValueError):
    """A mask could not be unmasked (base class of the kinds below)."""


class NotAMask(UnmaskError):
    """Not ``<key-id>.<base64url>`` of an AES-SIV value (ABI status 3)."""


class UnknownKeyId(UnmaskError):
    """The mask was made with a key that is not loaded (ABI status 4)."""


class MaskAuthenticationFailed(UnmaskError):
    """A wrong key, or a tampered value: AES-SIV authentication failed (ABI status 5)."""


class NotText(UnmaskError):
    """``unmask`` recovered bytes that are not UTF-8 text (a rejected body can be any bytes):
    ``unmask_bytes`` returns them."""


class ModuleError(MaskflowError, RuntimeError):
    """The module broke its contract or trapped (out of memory, a bug): a batch's outcome is
    unknown. Retry smaller batches; a message that fails alone is the host's ``module_failed``."""

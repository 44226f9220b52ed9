"""Exceptions. None of them ever carries key material or a clear value."""

from __future__ import annotations


class MaskflowError(Exception):
    """Base class of every error this package raises."""


class ConfigError(MaskflowError):
    """The keys or the mapping were refused (the module's ``init`` said why)."""


class UnmaskError(MaskflowError):
    """Not a mask, a key that is not loaded, or a wrong key / tampered value."""


class ModuleError(MaskflowError):
    """The module broke its contract or trapped (out of memory, a bug): a batch's outcome is
    unknown. Retry smaller batches; a message that fails alone is the host's ``module_failed``."""

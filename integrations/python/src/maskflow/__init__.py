"""maskflow's transform in Python: the same WebAssembly module as the maskflow host, so equal
inputs give equal masks everywhere (README.md of integrations/python).

>>> from maskflow import Transformer, Row
>>> t = Transformer(key_file="maskflow.key")                      # doctest: +SKIP
>>> t = Transformer(keys=key_source_text("aws-secretsmanager:maskflow/key"))  # doctest: +SKIP
>>> [o for o in t.transform(bodies) if isinstance(o, Row)]        # doctest: +SKIP
"""

from ._abi import ABI_VERSION, module_bytes
from ._aws import KeySourceError, key_source_text
from ._errors import (
    ConfigError,
    KeyFileError,
    KeyFileRule,
    MaskAuthenticationFailed,
    MaskflowError,
    ModuleError,
    NotAMask,
    NotText,
    UnknownKeyId,
    UnmaskError,
)
from ._keys import read_key_file
from ._outcomes import Outcome, Reason, Rejection, Row, Unmasked
from ._transformer import Transformer

__all__ = [
    "ABI_VERSION",
    "ConfigError",
    "KeyFileError",
    "KeyFileRule",
    "KeySourceError",
    "MaskAuthenticationFailed",
    "MaskflowError",
    "ModuleError",
    "NotAMask",
    "NotText",
    "Outcome",
    "Reason",
    "Rejection",
    "Row",
    "Transformer",
    "UnknownKeyId",
    "Unmasked",
    "UnmaskError",
    "key_source_text",
    "module_bytes",
    "read_key_file",
]
__version__ = "0.2.0"

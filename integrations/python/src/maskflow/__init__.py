"""maskflow's transform in Python: the same WebAssembly module as the maskflow host, so equal
inputs give equal masks everywhere (README.md of integrations/python).

>>> from maskflow import Transformer
>>> t = Transformer(keys=open("maskflow.key").read())          # doctest: +SKIP
>>> t = Transformer(keys=key_source_text("aws-secretsmanager:maskflow/key"))  # doctest: +SKIP
>>> [o.row or o.rejection for o in t.transform(bodies, sent_timestamp_ms=ts)]  # doctest: +SKIP
"""

from ._aws import KeySourceError, key_source_text
from ._errors import ConfigError, MaskflowError, ModuleError, UnmaskError
from ._keys import parse_key_file
from ._transformer import ABI_VERSION, Outcome, Transformer, module_bytes

__all__ = [
    "ABI_VERSION",
    "ConfigError",
    "KeySourceError",
    "MaskflowError",
    "ModuleError",
    "Outcome",
    "Transformer",
    "UnmaskError",
    "key_source_text",
    "module_bytes",
    "parse_key_file",
]
__version__ = "0.1.0"

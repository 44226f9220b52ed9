"""Key sources, as the host reads them (README "Key sources"): ``key_source_text(uri)`` is a key
file's text, for ``Transformer(keys=...)`` or any API that takes one.

- ``file:PATH``: a key file, refused when group or others can read it;
- ``env:VAR``: a variable holding a key file's text;
- ``aws-secretsmanager:SECRET_ID[:VERSION_STAGE]``: a secret whose string is a key file's text
  (SECRET_ID a name or an ARN, whose region is then used; the stage defaults to AWSCURRENT).

In any of them, a line ``ID:kms:KEY_ARN:BASE64`` is a KMS-wrapped key: it is unwrapped with
``kms:Decrypt`` under the encryption context ``maskflow-key-id = ID`` (a wrapped key moved to
another id is refused) and replaced, in place, by its plain ``ID:base64`` line.

AWS needs boto3: ``pip install maskflow[aws]``; it is imported only when an AWS source or a
wrapped line is read. Credentials and region come from boto3's chain; ``MASKFLOW_SECRETSMANAGER_ENDPOINT``
and ``MASKFLOW_KMS_ENDPOINT`` point at LocalStack and the like, as for the host. Errors never
carry key material: a refused call is a ``KeySourceError`` naming the call, the service's error
code and, for a refusal of a permission, the permission (``needs``).
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from typing import Any

from ._errors import ConfigError
from ._keys import read_key_file

#: The encryption context's key of wrapped lines (the host's, docs/deploy.md's IAM condition).
CONTEXT_KEY = "maskflow-key-id"
_KEY_LEN = 64
_ID = re.compile(r"[a-z0-9]{1,16}")
_FORMS = "file:PATH, env:VAR or aws-secretsmanager:SECRET_ID[:VERSION_STAGE]"
# Codes of trouble that heals (boto3 has retried them already); the rest is a setting to fix.
_TRANSIENT = {
    "ThrottlingException", "Throttling", "TooManyRequestsException", "RequestLimitExceeded",
    "InternalServiceError", "InternalFailure", "KMSInternalException", "DependencyTimeoutException",
    "ServiceUnavailable", "ServiceUnavailableException", "RequestTimeout",
}


class KeySourceError(ConfigError):
    """A key source's AWS call failed: ``call`` (``GetSecretValue``, ``Decrypt``), ``code`` (the
    service's error code), ``needs`` (the IAM permission refused, if that was it) and
    ``transient`` (throttling or the service's own failure: worth retrying later)."""

    def __init__(self, message: str, *, call: str, code: str | None, needs: str | None, transient: bool):
        super().__init__(message)
        self.call, self.code, self.needs, self.transient = call, code, needs, transient


def key_source_text(uri: str) -> str:
    """The key file's text that ``uri`` names, KMS-wrapped lines unwrapped."""
    scheme, sep, rest = uri.partition(":")
    if not sep or not rest:
        raise ConfigError(f"key source {uri.split(':')[0]!r}: not one of {_FORMS}")
    if scheme == "file":
        text = read_key_file(rest)
    elif scheme == "env":
        if rest not in os.environ:
            raise ConfigError(f"key source env:{rest}: the variable is not set")
        text = os.environ[rest]
    elif scheme == "aws-secretsmanager":
        text = _secret_text(*_split_stage(rest))
    else:
        raise ConfigError(f"key source {scheme!r}: not one of {_FORMS}")
    return _unwrap(text)


def _split_stage(rest: str) -> tuple[str, str | None]:
    """``SECRET_ID[:STAGE]``: a name holds no ``:``, an ARN six."""
    parts = rest.split(":")
    n = 7 if rest.startswith("arn:") else 1
    secret_id, stage = ":".join(parts[:n]), ":".join(parts[n:]) or None
    if not secret_id or (len(parts) > n and not stage):
        raise ConfigError(f"key source aws-secretsmanager: names no secret or stage; use {_FORMS}")
    return secret_id, stage


def _region_of_arn(arn: str) -> str | None:
    parts = arn.split(":")
    return (parts[3] or None) if arn.startswith("arn:") and len(parts) > 4 else None


def _client(service: str, endpoint_var: str, arn: str | None) -> Any:
    try:
        import boto3  # the optional extra: maskflow[aws]
    except ImportError:
        raise ConfigError("AWS key sources need boto3: pip install 'maskflow[aws]'") from None
    # The ARN's region, else AWS_REGION (which the host's SDK reads and boto3 does not), else
    # boto3's own chain (AWS_DEFAULT_REGION, the profile).
    region = (_region_of_arn(arn) if arn else None) or os.environ.get("AWS_REGION") or None
    endpoint = os.environ.get(endpoint_var) or None
    try:
        return boto3.client(service, region_name=region, endpoint_url=endpoint)
    except Exception as e:  # NoRegionError and the like: a setting
        raise ConfigError(f"key source: cannot set up {service}: {type(e).__name__}: set AWS_REGION "
                          "or name the secret or key by its ARN") from None


def _refused(e: Exception, call: str, target: str, permission: str) -> KeySourceError:
    error = getattr(e, "response", {}).get("Error", {})
    code = error.get("Code")
    needs = permission if code in ("AccessDeniedException", "AccessDenied") else None
    # KMS quotes what it was given in some messages: only the code and our words are kept.
    detail = f": {code}" if code else f": {type(e).__name__}"
    if needs:
        detail += f" (the role needs {needs})"
    return KeySourceError(f"{call} of {target}{detail}", call=call, code=code, needs=needs,
                          transient=code in _TRANSIENT or code is None)


def _secret_text(secret_id: str, stage: str | None) -> str:
    client = _client("secretsmanager", "MASKFLOW_SECRETSMANAGER_ENDPOINT", secret_id)
    args = {"SecretId": secret_id, **({"VersionStage": stage} if stage else {})}
    try:
        out = client.get_secret_value(**args)
    except Exception as e:  # botocore's errors: sorted by code, never by text
        raise _refused(e, "GetSecretValue", f"secret {secret_id!r}", "secretsmanager:GetSecretValue") from None
    text = out.get("SecretString")
    if text is None:
        raise ConfigError(f"secret {secret_id!r} holds binary data, not a key file's text")
    if text.lstrip().startswith("{"):
        raise ConfigError(f"secret {secret_id!r} holds JSON, not a key file's text (`id:base64` lines)")
    return text


def _unwrap(text: str) -> str:
    """``text`` with each ``ID:kms:KEY_ARN:BASE64`` line replaced by its plain line."""
    lines = text.split("\n")
    kms = None
    for number, line in enumerate(lines, start=1):
        key_id, sep, rest = line.partition(":kms:")
        if not sep or line.startswith("#"):
            continue
        arn, _, b64 = rest.rpartition(":")
        if not _ID.fullmatch(key_id) or ":kms:" not in arn or not _region_of_arn(arn):
            raise ConfigError(f"key line {number}: a KMS-wrapped key line is `id:kms:KEY_ARN:base64-ciphertext`")
        try:
            blob = base64.b64decode(b64, validate=True)
        except binascii.Error:
            raise ConfigError(f"key line {number}: the ciphertext is not standard base64") from None
        kms = kms or _client("kms", "MASKFLOW_KMS_ENDPOINT", arn)
        try:
            out = kms.decrypt(KeyId=arn, CiphertextBlob=blob, EncryptionContext={CONTEXT_KEY: key_id})
        except Exception as e:
            raise _refused(e, "Decrypt", f"key line {number} (key id {key_id!r})", "kms:Decrypt") from None
        clear = out["Plaintext"]
        if len(clear) != _KEY_LEN:
            raise ConfigError(f"key line {number}: the unwrapped key is {len(clear)} bytes, not {_KEY_LEN}")
        lines[number - 1] = f"{key_id}:{base64.b64encode(clear).decode()}"
    return "\n".join(lines)

"""What both Python baselines share: the table, the key, the masking and the flattening.

Masks are AES-256-SIV with the same per-column nonces and text form as maskflow
(`k1.<base64url>`), so the baselines do the same cryptographic work per value.
"""
import base64
import json

from cryptography.hazmat.primitives.ciphers.aead import AESSIV

DDL = """CREATE TABLE IF NOT EXISTS user_logins(
    user_id varchar(128), device_type varchar(32), masked_ip varchar(256),
    masked_device_id varchar(256), locale varchar(32), app_version integer, create_date date)"""
INSERT = """INSERT INTO user_logins (user_id, device_type, masked_ip, masked_device_id, locale,
    app_version, create_date) VALUES (%s, %s, %s, %s, %s, %s, to_timestamp(%s / 1000.0)::date)"""
IP_NONCE = b"maskflow.ip.v001"
DEVICE_ID_NONCE = b"maskflow.did.v01"


class Masker:
    def __init__(self, key_file):
        key_id, b64 = open(key_file).readline().strip().split(":", 1)
        self.key_id = key_id
        self.siv = AESSIV(base64.b64decode(b64))

    def mask(self, nonce, value):
        if value is None:
            return None
        sealed = self.siv.encrypt(value.encode(), [b"", nonce])
        return self.key_id + "." + base64.urlsafe_b64encode(sealed).rstrip(b"=").decode()


def version_code(text):
    if text is None:
        return None
    parts = [int(p) for p in str(text).split(".")]
    if len(parts) > 3:
        raise ValueError("version has more than three parts")
    parts += [0] * (3 - len(parts))
    return parts[0] * 1_000_000 + parts[1] * 1_000 + parts[2]


def row(masker, body, sent_timestamp_ms):
    """The user_logins row for a message body, or None for a message that is not a login event."""
    try:
        event = json.loads(body)
        if not isinstance(event, dict) or not isinstance(event.get("user_id"), str):
            return None
        return (event["user_id"], event.get("device_type"), masker.mask(IP_NONCE, event.get("ip")),
                masker.mask(DEVICE_ID_NONCE, event.get("device_id")), event.get("locale"),
                version_code(event.get("app_version")), int(sent_timestamp_ms))
    except (ValueError, TypeError, AttributeError):
        return None

"""Secrets in NetBird's formats: personal access tokens and setup keys, stored only as hashes."""

from __future__ import annotations

import base64
import hashlib
import secrets
import uuid
import zlib

PAT_PREFIX = "nbp_"
PAT_SECRET_LEN = 30
PAT_CHECKSUM_LEN = 6
PAT_LEN = len(PAT_PREFIX) + PAT_SECRET_LEN + PAT_CHECKSUM_LEN  # 40
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _base62(value: int) -> str:
    if value == 0:
        return "0"
    out = []
    while value:
        value, rem = divmod(value, 62)
        out.append(_BASE62[rem])
    return "".join(reversed(out))


def _checksum(secret: str) -> str:
    return _base62(zlib.crc32(secret.encode())).rjust(PAT_CHECKSUM_LEN, "0")


def hash_secret(secret: str) -> str:
    """base64(SHA-256(secret)): the only form in which tokens and setup keys are stored."""
    return base64.b64encode(hashlib.sha256(secret.encode()).digest()).decode()


def new_pat() -> str:
    secret = "".join(secrets.choice(_BASE62) for _ in range(PAT_SECRET_LEN))
    return PAT_PREFIX + secret + _checksum(secret)


def pat_well_formed(token: str) -> bool:
    if len(token) != PAT_LEN or not token.startswith(PAT_PREFIX):
        return False
    secret = token[len(PAT_PREFIX) : len(PAT_PREFIX) + PAT_SECRET_LEN]
    if any(c not in _BASE62 for c in secret):
        return False
    return token[-PAT_CHECKSUM_LEN:] == _checksum(secret)


def new_setup_key() -> str:
    """Setup keys are upper-case UUIDs, as NetBird issues them."""
    return str(uuid.uuid4()).upper()

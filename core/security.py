"""Retailer API keys: random, shown once, stored as SHA-256; looked up by hash."""

from __future__ import annotations

import hashlib
import secrets

KEY_PREFIX = "dsk_"


def new_api_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_token(nbytes: int = 24) -> str:
    return secrets.token_urlsafe(nbytes)

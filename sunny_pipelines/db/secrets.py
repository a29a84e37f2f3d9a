"""Secrets at rest: Fernet encryption of OAuth tokens, and the digests of push channel tokens.

Plain functions and classes (no Dagster): the webhook receiver and the command line tools use
them as they are; `resources.cipher.TokenCipher` wraps `TokenCrypto` for the code location.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from sunny_pipelines.db.engine import LOCAL_STATE_DIR

LOCAL_KEY_FILE = LOCAL_STATE_DIR / "token.key"


def local_dev_key(path: Path = LOCAL_KEY_FILE) -> str:
    """A per-checkout key for local use, created once with owner-only permissions.

    Production sets SUNNY_TOKEN_KEY; this keeps `dagster dev` and the CLI tools agreeing on a
    key without a secret committed anywhere.
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(Fernet.generate_key().decode())
    return path.read_text().strip()


class TokenDecryptionError(Exception):
    """A stored token cannot be decrypted with the configured key (wrong or rotated key)."""


class TokenCrypto:
    """Encrypts and decrypts OAuth tokens. ``key``: urlsafe-base64 32-byte Fernet key; empty
    means the local development key file (never a production setting)."""

    def __init__(self, key: str = "") -> None:
        self._fernet = Fernet((key or local_dev_key()).encode())

    def encrypt(self, plaintext: str | None) -> str | None:
        if plaintext is None:
            return None
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, ciphertext: str | None) -> str | None:
        if ciphertext is None:
            return None
        try:
            return self._fernet.decrypt(ciphertext.encode()).decode()
        except InvalidToken as exc:
            raise TokenDecryptionError("stored token cannot be decrypted with SUNNY_TOKEN_KEY") from exc


def new_channel_token() -> str:
    """A per-channel secret that Google echoes back in X-Goog-Channel-Token (≤ 256 chars)."""
    return secrets.token_urlsafe(32)


def channel_token_digest(token: str) -> str:
    """What `watch_channels.token_hash` stores: enough to verify a token, useless to forge one."""
    return hashlib.sha256(token.encode()).hexdigest()


def channel_token_matches(token: str | None, token_digest: str | None) -> bool:
    """Constant-time check of a presented channel token against the stored digest."""
    if not token or not token_digest:
        return False
    return hmac.compare_digest(channel_token_digest(token), token_digest)

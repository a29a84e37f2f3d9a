"""Token encryption at rest as a resource: Fernet, key from SUNNY_TOKEN_KEY."""

from __future__ import annotations

import dagster as dg

from sunny_pipelines.db.secrets import TokenCrypto


class TokenCipher(dg.ConfigurableResource):
    """Encrypts and decrypts OAuth tokens. The key is a urlsafe-base64 32-byte Fernet key."""

    # Empty means the local development key file (never a production setting).
    key: str = ""

    def crypto(self) -> TokenCrypto:
        return TokenCrypto(self.key)

    def encrypt(self, plaintext: str | None) -> str | None:
        return self.crypto().encrypt(plaintext)

    def decrypt(self, ciphertext: str | None) -> str | None:
        return self.crypto().decrypt(ciphertext)

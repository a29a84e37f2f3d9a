"""Signed pushes other services send to the app: Pub/Sub push (Gmail) and Attendee webhooks.

Pub/Sub push requests carry `Authorization: Bearer <Google-signed OIDC JWT>`. The sandbox signs them
with its own RSA key, whose self-signed certificate it serves at `/oauth2/v1/certs` in Google's format
(`{kid: PEM certificate}`), so `google.oauth2.id_token.verify_token(token, request, audience,
certs_url=BASE + "/oauth2/v1/certs")` verifies them unchanged.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from sunny_pipelines.sandbox.core.common import rfc3339_millis

PUBSUB_SERVICE_ACCOUNT = "sandbox-pubsub@sunny-sandbox.iam.gserviceaccount.com"
PUBSUB_SUBSCRIPTION = "projects/sunny-sandbox/subscriptions/gmail-push"
ISSUER = "https://accounts.google.com"
TOKEN_TTL = 3600


def self_signed_key_and_cert(
    common_name: str, valid_for: timedelta = timedelta(days=14)
) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    """An RSA key and its self-signed certificate, as a token signer publishes in its certs."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + valid_for)
        .sign(key, hashes.SHA256())
    )
    return key, cert


class PushSigner:
    """An RSA key with its self-signed certificate, created on first use (key generation costs ~0.1 s)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: rsa.RSAPrivateKey | None = None
        self._cert_pem = ""
        self.kid = ""

    def _ensure(self) -> rsa.RSAPrivateKey:
        with self._lock:
            if self._key is None:
                key, cert = self_signed_key_and_cert("sunny-sandbox.googleusercontent.com")
                self._cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
                self.kid = hashlib.sha1(cert.fingerprint(hashes.SHA256())).hexdigest()
                self._key = key
            return self._key

    def certs(self) -> dict[str, str]:
        """The certificate document, as https://www.googleapis.com/oauth2/v1/certs serves it."""
        self._ensure()
        return {self.kid: self._cert_pem}

    def id_token(self, audience: str, email: str = PUBSUB_SERVICE_ACCOUNT) -> str:
        key = self._ensure()
        # Real time, not the sandbox clock: the verifier checks iat/exp against its own clock.
        now = int(time.time())
        claims = {
            "aud": audience,
            "azp": str(int(hashlib.sha256(email.encode()).hexdigest()[:15], 16)),
            "email": email,
            "email_verified": True,
            "exp": now + TOKEN_TTL,
            "iat": now,
            "iss": ISSUER,
            "sub": str(int(hashlib.sha256(email.encode()).hexdigest()[:15], 16)),
        }
        return jwt.encode(claims, key, algorithm="RS256", headers={"kid": self.kid})


def pubsub_envelope(
    data: Any, attributes: dict[str, str] | None = None, subscription: str = PUBSUB_SUBSCRIPTION
) -> dict[str, Any]:
    """A Pub/Sub push body; both spellings of the message fields appear, as in real pushes."""
    message_id = str(secrets.randbelow(10**16))
    published = rfc3339_millis(time.time())
    message: dict[str, Any] = {
        "data": base64.b64encode(json.dumps(data).encode()).decode(),
        "messageId": message_id,
        "message_id": message_id,
        "publishTime": published,
        "publish_time": published,
    }
    if attributes:
        message["attributes"] = attributes
    return {"message": message, "subscription": subscription}


def attendee_signature(payload: dict[str, Any], secret_b64: str) -> str:
    """Attendee's webhook signature: base64(HMAC-SHA256(base64-decoded secret, canonical JSON))."""
    digest = hmac.new(base64.b64decode(secret_b64), canonical_json(payload), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def canonical_json(payload: Any) -> bytes:
    return json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()

"""Kept for existing imports (`PUBSUB_SERVICE_ACCOUNT`, `self_signed_key_and_cert`, ...).

Push signing lives in `sunny_pipelines.sandbox.core.signing`."""

from sunny_pipelines.sandbox.core.signing import (
    ISSUER,
    PUBSUB_SERVICE_ACCOUNT,
    PUBSUB_SUBSCRIPTION,
    PushSigner,
    attendee_signature,
    canonical_json,
    pubsub_envelope,
    self_signed_key_and_cert,
)

__all__ = [
    "ISSUER",
    "PUBSUB_SERVICE_ACCOUNT",
    "PUBSUB_SUBSCRIPTION",
    "PushSigner",
    "attendee_signature",
    "canonical_json",
    "pubsub_envelope",
    "self_signed_key_and_cert",
]

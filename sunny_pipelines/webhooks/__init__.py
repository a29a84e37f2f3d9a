"""The webhook receiver: Google channel notifications, Gmail via Pub/Sub push, and Attendee
webhooks become `webhook_inbox` rows (see shared/DESIGN.md, "External interfaces").

    from sunny_pipelines.webhooks import create_app, WebhookSettings, serve_in_thread
    base_url, stop = serve_in_thread(create_app(WebhookSettings(database_url=...)))
"""

from sunny_pipelines.webhooks.app import create_app
from sunny_pipelines.webhooks.auth import attendee_canonical_json, attendee_signature
from sunny_pipelines.webhooks.server import serve_in_thread
from sunny_pipelines.webhooks.settings import WebhookSettings

__all__ = [
    "WebhookSettings",
    "attendee_canonical_json",
    "attendee_signature",
    "create_app",
    "serve_in_thread",
]

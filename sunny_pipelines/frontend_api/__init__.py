"""The frontend API: connecting a Google account (OAuth authorization code with `state` and PKCE),
"sync now" (through the inbox, the push path) and sync status, with an OpenAPI document.

A web service apart from the webhook receiver; it imports no Dagster and no domain.

    from sunny_pipelines.frontend_api import FrontendSettings, create_app
    app = create_app(FrontendSettings.from_env())
"""

from sunny_pipelines.frontend_api.app import create_app
from sunny_pipelines.frontend_api.settings import REQUIRED_SCOPES, FrontendSettings

__all__ = ["REQUIRED_SCOPES", "FrontendSettings", "create_app"]

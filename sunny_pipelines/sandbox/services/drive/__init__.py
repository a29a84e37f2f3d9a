"""Drive v3: the service plugin (`DriveService`), its state (`store.DriveStore`), its HTTP routes
(`api.DriveApi`, metadata under `/drive/v3/` and uploads under `/upload/drive/v3/files`), the search
language (`query`) and seeding (`seed`).

An invalid page token (`changes.list`, `changes.watch`, `files.list`) is answered as Drive does:
HTTP 400, reason `invalid`, message "Invalid Value", location `pageToken`. The fault
`invalidate_page_tokens` makes every Drive page token the user holds invalid at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sunny_pipelines.sandbox.core.channels import WatchKind
from sunny_pipelines.sandbox.core.plugin import ApiRoute, ServicePlugin, register_service
from sunny_pipelines.sandbox.services.drive.api import DriveApi
from sunny_pipelines.sandbox.services.drive.store import CHANGES_WATCH, DriveStore

if TYPE_CHECKING:
    from sunny_pipelines.sandbox.core.accounts import User
    from sunny_pipelines.sandbox.seed import SeedContext
    from sunny_pipelines.sandbox.world import World

DAY = 86400


@register_service
class DriveService(ServicePlugin):
    name = "drive"
    error_prefixes = ("drive", "upload")
    # changes.watch channels last 1 hour unless asked otherwise, 7 days at most.
    watch_kinds = (WatchKind(CHANGES_WATCH, default_ttl_seconds=3600, max_ttl_seconds=7 * DAY),)
    fault_kinds = ("invalidate_page_tokens",)

    def __init__(self, world: World) -> None:
        super().__init__(world)
        self.store = DriveStore(world)
        self.api = DriveApi(world, self.store)

    def routes(self) -> list[ApiRoute]:
        return self.api.routes()

    def truth(self, user: User) -> dict[str, Any]:
        """Every file the user sees now (trashed included) and the export of each Docs editors file."""
        return self.store.truth(user)

    def on_user_added(self, user: User) -> None:
        self.store.add_account(user)

    def seed(self, ctx: SeedContext, users: list[dict[str, Any]], per_user: int) -> None:
        from sunny_pipelines.sandbox.services.drive.seed import seed_drives

        seed_drives(ctx, users, per_user)

    def apply_fault(self, kind: str, user: User) -> None:
        if kind != "invalidate_page_tokens":
            super().apply_fault(kind, user)
        self.store.invalidate_page_tokens(user.id)

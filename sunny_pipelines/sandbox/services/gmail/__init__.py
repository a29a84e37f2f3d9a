"""Gmail v1: the service plugin (`GmailService`), its state (`store.GmailStore`), its HTTP routes
(`api.GmailApi`, with the media upload paths), MIME handling (`mime`), search (`query`) and the
seeded mail (`seed`).

Watches publish to Pub/Sub topics; the core's push subscriptions (`World.create_push_subscription`)
carry them to the app as signed pushes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sunny_pipelines.sandbox.core.plugin import ApiRoute, ServicePlugin, register_service
from sunny_pipelines.sandbox.services.gmail.api import GmailApi
from sunny_pipelines.sandbox.services.gmail.store import GmailStore

if TYPE_CHECKING:
    from sunny_pipelines.sandbox.core.accounts import User
    from sunny_pipelines.sandbox.seed import SeedContext
    from sunny_pipelines.sandbox.world import World


@register_service
class GmailService(ServicePlugin):
    name = "gmail"
    error_prefixes = ("gmail", "upload")
    # Drops every history record of the user: an older startHistoryId answers 404 (full sync).
    fault_kinds = ("expire_history",)

    def __init__(self, world: World) -> None:
        super().__init__(world)
        self.store = GmailStore(world)
        self.api = GmailApi(world, self.store)

    def routes(self) -> list[ApiRoute]:
        return self.api.routes()

    def truth(self, user: User) -> dict[str, Any]:
        """The mailbox's historyId and every message (trash and spam included), newest first."""
        return self.store.truth(user)

    def on_user_added(self, user: User) -> None:
        self.store.create_mailbox(user)

    def seed(self, ctx: SeedContext, users: list[dict[str, Any]], per_user: int) -> None:
        from sunny_pipelines.sandbox.services.gmail.seed import seed_mailboxes

        seed_mailboxes(ctx, self.store, users, per_user)

    def apply_fault(self, kind: str, user: User) -> None:
        if kind != "expire_history":
            super().apply_fault(kind, user)
        self.store.expire_history(user)

"""The product's words, shared by every package (the receiver too: this module imports no Dagster).

Columns store the enum values; comparing a row's string with a member works because these are
StrEnums.
"""

from __future__ import annotations

from enum import StrEnum


class Service(StrEnum):
    """What `sync_state.service` names: one incremental cursor and cadence per (user, service)."""

    CALENDAR = "calendar"
    CALENDAR_LIST = "calendar_list"
    DRIVE = "drive"
    GMAIL = "gmail"
    ATTENDEE = "attendee"  # meeting bots (the meetings domain)
    CLASSIFICATION = "classification"  # document and email labels (the ai domain)
    SUMMARIES = "summaries"  # meeting summaries (the ai domain)


class Source(StrEnum):
    """Who sent a `webhook_inbox` row. Google channel sources are ``google_<endpoint>``: the
    receiver's `/webhooks/google/<endpoint>` path names them."""

    GOOGLE_CALENDAR = "google_calendar"
    GOOGLE_DRIVE = "google_drive"
    GOOGLE_GMAIL = "google_gmail"
    ATTENDEE = "attendee"

    @classmethod
    def for_google_endpoint(cls, endpoint: str) -> Source | None:
        try:
            return cls(f"google_{endpoint}")
        except ValueError:
            return None


class InboxStatus(StrEnum):
    PENDING = "pending"
    DONE = "done"
    # Failed with an attempt left (retried after its backoff) or a dead letter (attempts used).
    FAILED = "failed"
    # Authenticated but unusable, such as a mailbox we no longer serve; never processed.
    REJECTED = "rejected"


class Trigger(StrEnum):
    """Why a per-user run was launched (`sunny/trigger` tag); it decides whom the run works on."""

    SCHEDULE = "schedule"  # users whose interval has elapsed, plus users with inbox rows
    INBOX = "inbox"  # users with inbox rows to answer
    FIRST_SYNC = "first_sync"  # every user in the range: they were just connected
    BACKFILL = "backfill"  # every user in the range: an operator asked (no tag: a UI backfill)
    UPSTREAM = "upstream"  # every user in the range: data the asset reads just changed for them


class UserStatus(StrEnum):
    ACTIVE = "active"
    DELETED = "deleted"


class GrantStatus(StrEnum):
    """`google_connections.status`."""

    ACTIVE = "active"
    # Google refused the grant (invalid_grant, a required scope withdrawn): the user must consent again.
    NEEDS_REAUTH = "needs_reauth"
    # The user disconnected Google in the frontend: the revocation job revokes it at Google.
    DISCONNECTED = "disconnected"
    # Revoked at Google by us, tokens erased.
    REVOKED = "revoked"


class GoogleScope(StrEnum):
    """The OAuth scopes Sunny asks Google for."""

    EMAIL = "https://www.googleapis.com/auth/userinfo.email"
    CALENDAR = "https://www.googleapis.com/auth/calendar"
    DRIVE = "https://www.googleapis.com/auth/drive"
    GMAIL = "https://www.googleapis.com/auth/gmail.modify"


# The one place that says which scopes each Google service's sync needs: the consent screen asks
# for them, and the daily token validation marks a grant that lost one as needing re-consent.
SERVICE_SCOPES: dict[Service, tuple[GoogleScope, ...]] = {
    Service.CALENDAR: (GoogleScope.CALENDAR,),
    Service.CALENDAR_LIST: (GoogleScope.CALENDAR,),
    Service.DRIVE: (GoogleScope.DRIVE,),
    Service.GMAIL: (GoogleScope.GMAIL,),
}
# What every grant must carry: the account's address, and every service's scopes.
REQUIRED_SCOPES: tuple[GoogleScope, ...] = (
    GoogleScope.EMAIL,
    *sorted({scope for scopes in SERVICE_SCOPES.values() for scope in scopes}),
)


class ChannelKind(StrEnum):
    """What a Google push channel watches (`watch_channels.service`)."""

    CALENDAR_EVENTS = "calendar_events"  # events.watch on one calendar
    CALENDAR_LIST = "calendar_list"  # calendarList.watch: calendars added or removed
    DRIVE_CHANGES = "drive"  # changes.watch
    GMAIL_MAILBOX = "gmail"  # users.watch (Pub/Sub)


class ProcessingStatus(StrEnum):
    """`emails.processing_status`: what email processing made of a message."""

    PENDING = "pending"
    PROCESSED = "processed"
    FAILED = "failed"


class ChannelStatus(StrEnum):
    ACTIVE = "active"
    STOPPED = "stopped"
    EXPIRED = "expired"
    REPLACED = "replaced"

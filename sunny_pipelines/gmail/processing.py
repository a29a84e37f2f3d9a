"""What an email is, decided from its parsed form alone: meeting traffic, bulk mail, machine mail,
or left for the AI classifier. `decide` is pure: a ParsedMessage and the mailbox in, an outcome out.

Order of the rules (first match wins):
1. a malformed message (`mime.is_malformed`) or a calendar part that does not parse: failed;
2. a calendar part whose METHOD is REQUEST, ADD, REPLY, COUNTER or CANCEL: a meeting kind;
3. an explicit RFC 3834 machine statement (Auto-Submitted other than "no", X-Autoreply,
   X-Autorespond, Precedence: auto_reply): automated. It comes before the list headers because
   it is the more specific claim (Jira and out-of-office replies can carry list headers too);
4. List-Unsubscribe, List-Id or Precedence bulk/list/junk, unless the mailbox sent it itself (its
   own post to a list it reads): newsletter;
5. a no-reply-style sender (`automated_sender_reason`): automated;
6. anything else: needs_classification.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sunny_pipelines.gmail.icalendar import (
    Attendee,
    CalendarEvent,
    CalendarMessage,
    CalendarParseError,
    parse_calendar,
)
from sunny_pipelines.gmail.mime import ParsedMessage, is_malformed


class OutcomeStatus(StrEnum):
    PROCESSED = "processed"
    FAILED = "failed"


class EmailKind(StrEnum):
    MEETING_INVITATION = "meeting_invitation"
    MEETING_UPDATE = "meeting_update"  # a REQUEST for an event already sent (SEQUENCE > 0, one instance)
    MEETING_REPLY = "meeting_reply"
    MEETING_CANCELLATION = "meeting_cancellation"
    NEWSLETTER = "newsletter"
    AUTOMATED = "automated"
    NEEDS_CLASSIFICATION = "needs_classification"  # left for the AI classifier


@dataclass(frozen=True)
class EmailOutcome:
    status: OutcomeStatus
    kind: EmailKind | None  # None when failed: nothing was decided
    reason: str  # why, for an operator: names the evidence
    calendar_uid: str | None = None
    calendar_method: str | None = None
    reply_status: str | None = None  # the replying attendee's PARTSTAT (REPLY, COUNTER)
    error: str | None = None  # set when failed

    def to_json(self) -> dict[str, Any]:
        return {
            "status": str(self.status),
            "kind": str(self.kind) if self.kind else None,
            "reason": self.reason,
            "calendar_uid": self.calendar_uid,
            "calendar_method": self.calendar_method,
            "reply_status": self.reply_status,
            "error": self.error,
        }


# No-reply senders, matched on the local part (lower-cased, "+tag" dropped) split into words at
# "-", "_" and ".": a run of words that spells one of these marks the sender, so "noreply",
# "no-reply", "no_reply", "donotreply", "do-not-reply", "drive-shares-noreply", "noreply-dmarc"
# and "mailer-daemon" match, while "noreen", "reply" or "snoreply" do not.
NO_REPLY_WORDS = frozenset({"noreply", "donotreply", "mailerdaemon"})
# Local parts that mark machine mail only when they are the whole local part: "notifications@"
# is GitHub's, Facebook's, LinkedIn's, but "notifications-team@" may well be people.
AUTOMATED_LOCAL_PARTS = frozenset({"postmaster", "notifications", "notification", "bounce", "bounces"})


def decide(parsed: ParsedMessage, mailbox: str) -> EmailOutcome:
    """The processing outcome of one email of `mailbox` (the user's own address)."""
    broken = is_malformed(parsed)
    if broken:
        return _failed(f"malformed message: {broken}", broken)

    calendars: list[CalendarMessage] = []
    for index, text in enumerate(parsed.calendar_parts, start=1):
        try:
            calendars.append(parse_calendar(text))
        except CalendarParseError as exc:
            return _failed(
                f"calendar part {index} of {len(parsed.calendar_parts)} is unusable: {exc}", str(exc)
            )
    for calendar in calendars:
        outcome = _meeting_outcome(calendar, parsed)
        if outcome:
            return outcome
    # A PUBLISH (a ticket's "add to calendar") is not meeting traffic: the other rules decide,
    # and the outcome still names the calendar.
    first = calendars[0] if calendars else None
    calendar = {"calendar_uid": first.uid, "calendar_method": first.method} if first else {}

    headers = parsed.headers
    auto = _auto_submitted_reason(headers)
    if auto:
        return EmailOutcome(OutcomeStatus.PROCESSED, EmailKind.AUTOMATED, auto, **calendar)
    bulk = _bulk_reason(headers)
    if bulk and not _same_address(parsed.sender, mailbox):
        return EmailOutcome(OutcomeStatus.PROCESSED, EmailKind.NEWSLETTER, bulk, **calendar)
    sender = automated_sender_reason(parsed.sender)
    if sender:
        return EmailOutcome(OutcomeStatus.PROCESSED, EmailKind.AUTOMATED, sender, **calendar)
    why = "no meeting, list or automated evidence" + (" (mailbox's own list post)" if bulk else "")
    return EmailOutcome(OutcomeStatus.PROCESSED, EmailKind.NEEDS_CLASSIFICATION, why, **calendar)


def _failed(reason: str, error: str) -> EmailOutcome:
    return EmailOutcome(OutcomeStatus.FAILED, None, reason, error=error)


def _meeting_outcome(calendar: CalendarMessage, parsed: ParsedMessage) -> EmailOutcome | None:
    method, event = calendar.method, calendar.events[0]
    evidence = f"text/calendar METHOD:{method} for UID {event.uid}"
    found = {"calendar_uid": event.uid, "calendar_method": method}
    if method == "REQUEST":
        update = [
            f"SEQUENCE:{e.sequence}" if e.sequence else "RECURRENCE-ID"
            for e in calendar.events
            if e.sequence > 0 or e.recurrence_id
        ]
        if update:
            kind, evidence = EmailKind.MEETING_UPDATE, f"{evidence} ({update[0]})"
        else:
            kind = EmailKind.MEETING_INVITATION
        return EmailOutcome(OutcomeStatus.PROCESSED, kind, evidence, **found)
    if method == "ADD":  # new instances of a series already sent
        return EmailOutcome(OutcomeStatus.PROCESSED, EmailKind.MEETING_UPDATE, evidence, **found)
    if method == "CANCEL":
        return EmailOutcome(OutcomeStatus.PROCESSED, EmailKind.MEETING_CANCELLATION, evidence, **found)
    if method in ("REPLY", "COUNTER"):  # COUNTER: the attendee proposes another time
        attendee = _replying_attendee(event, parsed.sender)
        if attendee is None:
            return EmailOutcome(
                OutcomeStatus.PROCESSED, EmailKind.MEETING_REPLY, f"{evidence}, no ATTENDEE named", **found
            )
        partstat = attendee.partstat if method == "REPLY" else "COUNTER"
        reason = f"{evidence}: {attendee.email} {partstat}"
        return EmailOutcome(
            OutcomeStatus.PROCESSED, EmailKind.MEETING_REPLY, reason, reply_status=partstat, **found
        )
    return None


def _replying_attendee(event: CalendarEvent, sender: str | None) -> Attendee | None:
    """A REPLY lists only the attendee who answers; prefer the sender if several are listed."""
    for attendee in event.attendees:
        if _same_address(attendee.email, sender):
            return attendee
    return event.attendees[0] if event.attendees else None


def _auto_submitted_reason(headers: dict[str, str]) -> str | None:
    auto_submitted = headers.get("auto-submitted", "").strip().lower()
    if auto_submitted and auto_submitted.split(";")[0].strip() != "no":
        return f"Auto-Submitted: {headers['auto-submitted']}"
    for name, label in (("x-autoreply", "X-Autoreply"), ("x-autorespond", "X-Autorespond")):
        if name in headers:
            return f"{label} header"
    if headers.get("precedence", "").strip().lower() == "auto_reply":
        return "Precedence: auto_reply"
    return None


def _bulk_reason(headers: dict[str, str]) -> str | None:
    if "list-unsubscribe" in headers:
        return "List-Unsubscribe header"
    if "list-id" in headers:
        return f"List-Id header {headers['list-id']}"
    precedence = headers.get("precedence", "").strip().lower()
    if precedence in ("bulk", "list", "junk"):
        return f"Precedence: {precedence}"
    return None


def automated_sender_reason(sender: str | None) -> str | None:
    """'sender <address>' when the address is a no-reply-style machine sender, else None."""
    if not sender or "@" not in sender:
        return None
    local = _local_part(sender)
    words = [word for word in re.split(r"[-_.]", local) if word]
    runs = {"".join(words[i:j]) for i in range(len(words)) for j in range(i + 1, len(words) + 1)}
    if runs & NO_REPLY_WORDS or local in AUTOMATED_LOCAL_PARTS:
        return f"sender {sender}"
    return None


def _local_part(address: str) -> str:
    return address.rsplit("@", 1)[0].split("+", 1)[0].lower()


def _same_address(a: str | None, b: str | None) -> bool:
    """Equal addresses, ignoring case and "+tag" subaddresses."""
    if not a or not b or "@" not in a or "@" not in b:
        return False
    return (_local_part(a), a.rsplit("@", 1)[1].lower()) == (_local_part(b), b.rsplit("@", 1)[1].lower())

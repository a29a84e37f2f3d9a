"""decide(): each fixture's outcome, the order of the rules, and the no-reply sender list."""

from __future__ import annotations

import pytest

from sunny_pipelines.gmail.mime import ParsedMessage
from sunny_pipelines.gmail.processing import (
    EmailKind,
    EmailOutcome,
    OutcomeStatus,
    automated_sender_reason,
    decide,
)
from sunny_pipelines_tests.gmail.helpers import MAILBOX, all_fixtures, parsed

GOOGLE_UID = "3k9q2v7h1m4n8p0r5s6t1u2v3w@google.com"
OUTLOOK_UID = (  # Outlook's UIDs are hex GlobalObjectIds
    "040000008200E00074C5B7101A82E00800000000D0C1F3E2B5A1DB01"
    "0000000000000000100000003A7F1C2B9E4D6A48B1C0D2E3F4A5B6C7"
)
DECLINED_UID = (
    "040000008200E00074C5B7101A82E008000000009A8B7C6D5E4FDB01000000000000000010000000FEDCBA9876543210"
)

P, F = OutcomeStatus.PROCESSED, OutcomeStatus.FAILED
# fixture -> (status, kind, words the reason must contain, calendar uid, method, reply status)
OUTCOMES = {
    "google_invitation.eml": (
        P,
        EmailKind.MEETING_INVITATION,
        f"text/calendar METHOD:REQUEST for UID {GOOGLE_UID}",
        GOOGLE_UID,
        "REQUEST",
        None,
    ),
    "outlook_teams_invitation.eml": (
        P,
        EmailKind.MEETING_INVITATION,
        f"METHOD:REQUEST for UID {OUTLOOK_UID}",
        OUTLOOK_UID,
        "REQUEST",
        None,
    ),
    "google_updated_invitation.eml": (
        P,
        EmailKind.MEETING_UPDATE,
        "METHOD:REQUEST for UID 5m2n7b4v1c8x@google.com (SEQUENCE:2)",
        "5m2n7b4v1c8x@google.com",
        "REQUEST",
        None,
    ),
    "google_reply_accepted.eml": (
        P,
        EmailKind.MEETING_REPLY,
        "METHOD:REPLY for UID 9q8w7e6r5t4y@google.com: bob@partner.example ACCEPTED",
        "9q8w7e6r5t4y@google.com",
        "REPLY",
        "ACCEPTED",
    ),
    "outlook_reply_declined.eml": (
        P,
        EmailKind.MEETING_REPLY,
        "jane.doe@contoso.example DECLINED",
        DECLINED_UID,
        "REPLY",
        "DECLINED",
    ),
    "google_cancellation.eml": (
        P,
        EmailKind.MEETING_CANCELLATION,
        f"METHOD:CANCEL for UID {GOOGLE_UID}",
        GOOGLE_UID,
        "CANCEL",
        None,
    ),
    "newsletter.eml": (P, EmailKind.NEWSLETTER, "List-Unsubscribe header", None, None, None),
    "github_notification.eml": (P, EmailKind.AUTOMATED, "Auto-Submitted: auto-generated", None, None, None),
    "out_of_office.eml": (P, EmailKind.AUTOMATED, "Auto-Submitted: auto-replied", None, None, None),
    "personal_reply.eml": (
        P,
        EmailKind.NEEDS_CLASSIFICATION,
        "no meeting, list or automated",
        None,
        None,
        None,
    ),
    "html_only.eml": (P, EmailKind.NEEDS_CLASSIFICATION, "no meeting, list or automated", None, None, None),
    "unterminated_multipart.eml": (P, EmailKind.NEEDS_CLASSIFICATION, "no meeting", None, None, None),
    "malformed_boundary_missing.eml": (
        F,
        None,
        "malformed message: multipart boundary never found",
        None,
        None,
        None,
    ),
    "malformed_broken_base64.eml": (
        F,
        None,
        "malformed message: unreadable body: invalid base64",
        None,
        None,
        None,
    ),
    "malformed_no_headers.eml": (F, None, "malformed message: no headers", None, None, None),
    "calendar_not_icalendar.eml": (
        F,
        None,
        "calendar part 1 of 1 is unusable: not iCalendar: it starts with 'Room 4.01 booked",
        None,
        None,
        None,
    ),
}


def test_every_fixture_has_an_expected_outcome():
    assert sorted(OUTCOMES) == all_fixtures()


@pytest.mark.parametrize("name", sorted(OUTCOMES))
def test_fixture_outcomes(name):
    status, kind, reason, uid, method, reply_status = OUTCOMES[name]
    outcome = decide(parsed(name), MAILBOX)
    assert (outcome.status, outcome.kind) == (status, kind)
    assert reason in outcome.reason
    assert (outcome.calendar_uid, outcome.calendar_method, outcome.reply_status) == (
        uid,
        method,
        reply_status,
    )
    assert (outcome.error is not None) == (status == F)


def test_failed_outcome_carries_the_parse_error():
    outcome = decide(parsed("calendar_not_icalendar.eml"), MAILBOX)
    assert outcome.error.startswith("not iCalendar")
    assert outcome.to_json() == {
        "status": "failed",
        "kind": None,
        "reason": outcome.reason,
        "calendar_uid": None,
        "calendar_method": None,
        "reply_status": None,
        "error": outcome.error,
    }


def _message(
    sender: str = "someone@example.com", calendar: str | None = None, **headers: str
) -> ParsedMessage:
    return ParsedMessage(
        sender=sender,
        headers={name.replace("_", "-"): value for name, value in headers.items()},
        calendar_parts=[calendar] if calendar else [],
        body_text="hello",
    )


def _ics(method: str, *lines: str) -> str:
    body = "\n".join(["UID:evt-1@example.com", *lines])
    return f"BEGIN:VCALENDAR\nMETHOD:{method}\nBEGIN:VEVENT\n{body}\nEND:VEVENT\nEND:VCALENDAR\n"


@pytest.mark.parametrize(
    "message, kind, reason",
    [
        (_message(list_unsubscribe="<https://x.example/u>"), EmailKind.NEWSLETTER, "List-Unsubscribe header"),
        (
            _message(list_id="Team <team.example.com>"),
            EmailKind.NEWSLETTER,
            "List-Id header Team <team.example.com>",
        ),
        (_message(precedence="Bulk"), EmailKind.NEWSLETTER, "Precedence: bulk"),
        (_message(precedence="junk"), EmailKind.NEWSLETTER, "Precedence: junk"),
        (_message(precedence="list"), EmailKind.NEWSLETTER, "Precedence: list"),
        (_message(precedence="auto_reply"), EmailKind.AUTOMATED, "Precedence: auto_reply"),
        (_message(auto_submitted="auto-generated"), EmailKind.AUTOMATED, "Auto-Submitted: auto-generated"),
        (_message(auto_submitted="auto-notified; owner-email=x@y"), EmailKind.AUTOMATED, "Auto-Submitted"),
        (_message(x_autoreply="yes"), EmailKind.AUTOMATED, "X-Autoreply header"),
        (_message(x_autorespond="vacation"), EmailKind.AUTOMATED, "X-Autorespond header"),
        # "Auto-Submitted: no" says a person sent it
        (_message(auto_submitted="no"), EmailKind.NEEDS_CLASSIFICATION, "no meeting"),
        # X-Auto-Response-Suppress only asks others not to auto-reply: people's Outlook sets it too
        (_message(x_auto_response_suppress="All"), EmailKind.NEEDS_CLASSIFICATION, "no meeting"),
        # an explicit machine statement wins over list headers (Jira, out-of-office to a list)
        (
            _message(auto_submitted="auto-generated", list_id="<jira.acme>"),
            EmailKind.AUTOMATED,
            "Auto-Submitted: auto-generated",
        ),
        # list headers win over a no-reply sender: marketing often comes from no-reply addresses
        (
            _message("no-reply@shop.example", list_unsubscribe="<mailto:u@shop.example>"),
            EmailKind.NEWSLETTER,
            "List",
        ),
        (_message("no-reply@github.com"), EmailKind.AUTOMATED, "sender no-reply@github.com"),
        # the mailbox's own post to a list it reads is not a newsletter
        (_message(MAILBOX, list_id="<team.example.com>"), EmailKind.NEEDS_CLASSIFICATION, "own list post"),
        (_message("Sunny.User+lists@example.com", precedence="list"), EmailKind.NEEDS_CLASSIFICATION, "own"),
        # calendar traffic wins over everything but a failure
        (
            _message("noreply@calendar.example", _ics("REQUEST"), list_unsubscribe="<https://x>"),
            EmailKind.MEETING_INVITATION,
            "METHOD:REQUEST for UID evt-1@example.com",
        ),
        (
            _message(calendar=_ics("REQUEST", "RECURRENCE-ID:20261203T090000Z")),
            EmailKind.MEETING_UPDATE,
            "RECURRENCE-ID",
        ),
        (_message(calendar=_ics("REQUEST", "SEQUENCE:0")), EmailKind.MEETING_INVITATION, "METHOD:REQUEST"),
        (_message(calendar=_ics("ADD")), EmailKind.MEETING_UPDATE, "METHOD:ADD"),
        (_message(calendar=_ics("CANCEL")), EmailKind.MEETING_CANCELLATION, "METHOD:CANCEL"),
        (_message(calendar=_ics("REPLY")), EmailKind.MEETING_REPLY, "no ATTENDEE named"),
        # a PUBLISH ("add to calendar" on a ticket) is not meeting traffic
        (
            _message("noreply@tickets.example", _ics("PUBLISH")),
            EmailKind.AUTOMATED,
            "sender noreply@tickets.example",
        ),
    ],
)
def test_rules(message, kind, reason):
    outcome = decide(message, MAILBOX)
    assert (outcome.status, outcome.kind) == (OutcomeStatus.PROCESSED, kind)
    assert reason in outcome.reason


def test_publish_still_names_its_calendar():
    outcome = decide(_message(calendar=_ics("PUBLISH")), MAILBOX)
    assert (outcome.kind, outcome.calendar_uid, outcome.calendar_method) == (
        EmailKind.NEEDS_CLASSIFICATION,
        "evt-1@example.com",
        "PUBLISH",
    )


def test_reply_prefers_the_attendee_who_sent_it():
    ics = _ics(
        "REPLY",
        "ATTENDEE;PARTSTAT=ACCEPTED:mailto:first@example.com",
        "ATTENDEE;PARTSTAT=TENTATIVE:mailto:Sender@Example.com",
    )
    outcome = decide(_message("sender@example.com", ics), MAILBOX)
    assert (outcome.kind, outcome.reply_status) == (EmailKind.MEETING_REPLY, "TENTATIVE")
    assert "sender@example.com TENTATIVE" in outcome.reason


def test_counter_is_a_reply_proposing_another_time():
    ics = _ics("COUNTER", "ATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:bob@example.com")
    outcome = decide(_message("bob@example.com", ics), MAILBOX)
    assert (outcome.kind, outcome.reply_status, outcome.calendar_method) == (
        EmailKind.MEETING_REPLY,
        "COUNTER",
        "COUNTER",
    )


def test_any_unparseable_calendar_part_fails_the_message():
    message = ParsedMessage(
        sender="a@example.com", calendar_parts=[_ics("REQUEST"), "BEGIN:VCALENDAR\nEND:VCALENDAR"]
    )
    outcome = decide(message, MAILBOX)
    assert outcome == EmailOutcome(
        OutcomeStatus.FAILED,
        None,
        "calendar part 2 of 2 is unusable: iCalendar has no VEVENT (components: none)",
        error="iCalendar has no VEVENT (components: none)",
    )


def test_malformed_wins_over_calendar():
    message = ParsedMessage(calendar_parts=[_ics("REQUEST")], defects=["empty message"])
    assert decide(message, MAILBOX).status == OutcomeStatus.FAILED


@pytest.mark.parametrize(
    "sender",
    [
        "noreply@github.com",
        "no-reply@accounts.google.com",
        "no_reply@email.apple.com",
        "NoReply@Example.com",
        "donotreply@bank.example",
        "do-not-reply@bank.example",
        "do_not_reply@bank.example",
        "noreply+abc123@mail.example",
        "drive-shares-dm-noreply@google.com",
        "noreply-dmarc-support@google.com",
        "jira.no.reply@acme.example",
        "mailer-daemon@googlemail.com",
        "MAILER-DAEMON@mx.example",
        "postmaster@example.com",
        "notifications@github.com",
        "notification@slack.example",
        "bounces@lists.example",
    ],
)
def test_no_reply_senders(sender):
    assert automated_sender_reason(sender.lower()) == f"sender {sender.lower()}"


@pytest.mark.parametrize(
    "sender",
    [
        "noreen@example.com",  # a name that starts like "no-reply"
        "reply@example.com",
        "replies@support.example",
        "snoreply@example.com",
        "postmaster-general@example.com",  # only the whole local part counts
        "notifications-team@acme.example",
        "info@example.com",
        "support@example.com",
        "alerts.team@example.com",
        "john.noble@example.com",
        "noreply",  # no domain: not an address
        "",
        None,
    ],
)
def test_people_are_not_no_reply_senders(sender):
    assert automated_sender_reason(sender) is None

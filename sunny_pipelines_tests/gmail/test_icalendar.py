"""parse_calendar: unfolding, parameters, escapes, time zones (IANA and Outlook's VTIMEZONE), iTIP fields."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from sunny_pipelines.gmail.icalendar import Attendee, CalendarParseError, parse_calendar
from sunny_pipelines_tests.gmail.helpers import parsed


def calendar(*event_lines: str, method: str | None = "REQUEST", extra: str = "") -> str:
    head = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//test//EN"]
    head += [f"METHOD:{method}"] if method else []
    return "\r\n".join([*head, extra, "BEGIN:VEVENT", *event_lines, "END:VEVENT", "END:VCALENDAR", ""])


def event(*lines: str, **kwargs):
    (only,) = parse_calendar(calendar("UID:u1@test", *lines, **kwargs)).events
    return only


def test_google_invitation():
    message = parse_calendar(parsed("google_invitation.eml").calendar_parts[0])
    assert message.method == "REQUEST"
    assert message.uid == "3k9q2v7h1m4n8p0r5s6t1u2v3w@google.com"
    (ev,) = message.events
    assert ev.summary == "Q4 planning, London"  # "\," unescaped
    assert ev.location == "Room 4.01, London Office"
    assert (ev.start, ev.end) == (
        datetime(2026, 11, 30, 10, tzinfo=UTC),
        datetime(2026, 11, 30, 11, tzinfo=UTC),
    )
    assert ev.all_day is False
    assert ev.organizer == "alice@acme.example"
    assert (ev.sequence, ev.status, ev.recurrence_id, ev.rrule) == (0, "CONFIRMED", None, None)
    # folded ATTENDEE lines are unfolded; the VALARM's ATTENDEE is not an event attendee
    assert ev.attendees == [
        Attendee("alice@acme.example", "ACCEPTED", "Alice Archer"),
        Attendee("sunny.user@example.com", "NEEDS-ACTION", "Sunny User"),
        Attendee("bob@partner.example", "NEEDS-ACTION", "bob@partner.example"),
    ]


def test_updated_invitation_in_summer_time():
    (ev,) = parse_calendar(parsed("google_updated_invitation.eml").calendar_parts[0]).events
    assert ev.sequence == 2
    assert ev.start == datetime(2027, 6, 15, 14, tzinfo=UTC)  # 15:00 BST


def test_outlook_invitation_with_windows_time_zone():
    message = parse_calendar(parsed("outlook_teams_invitation.eml").calendar_parts[0])
    (ev,) = message.events
    assert message.method == "REQUEST"
    assert message.uid.startswith("040000008200E00074C5B7101A82E008")
    assert ev.summary == "Weekly sync – Grünwald project"  # SUMMARY;LANGUAGE=en-US:
    assert ev.start == datetime(2026, 12, 3, 13, 30, tzinfo=UTC)  # 14:30 CET
    assert ev.end == datetime(2026, 12, 3, 14, tzinfo=UTC)
    assert ev.rrule == "FREQ=WEEKLY;UNTIL=20270325T133000Z;INTERVAL=1;BYDAY=TH;WKST=MO"
    assert ev.organizer == "bjorn.larsson@contoso.example"
    assert ev.attendees[1] == Attendee("jane.doe@contoso.example", "NEEDS-ACTION", "Doe, Jane")


@pytest.mark.parametrize(
    "name, method, email, partstat",
    [
        ("google_reply_accepted.eml", "REPLY", "bob@partner.example", "ACCEPTED"),
        ("outlook_reply_declined.eml", "REPLY", "jane.doe@contoso.example", "DECLINED"),
    ],
)
def test_replies_name_their_attendee(name, method, email, partstat):
    message = parse_calendar(parsed(name).calendar_parts[0])
    assert message.method == method
    ((attendee_email, attendee_partstat, _),) = message.events[0].attendees
    assert (attendee_email, attendee_partstat) == (email, partstat)


def test_cancellation():
    message = parse_calendar(parsed("google_cancellation.eml").calendar_parts[0])
    assert (message.method, message.events[0].status, message.events[0].sequence) == (
        "CANCEL",
        "CANCELLED",
        1,
    )


# The VTIMEZONE Outlook sends for "W. Europe Standard Time" must agree with Europe/Berlin.
WINDOWS_ZONE = "\r\n".join(
    [
        "BEGIN:VTIMEZONE",
        "TZID:W. Europe Standard Time",
        "BEGIN:STANDARD",
        "DTSTART:16010101T030000",
        "TZOFFSETFROM:+0200",
        "TZOFFSETTO:+0100",
        "RRULE:FREQ=YEARLY;INTERVAL=1;BYDAY=-1SU;BYMONTH=10",
        "END:STANDARD",
        "BEGIN:DAYLIGHT",
        "DTSTART:16010101T020000",
        "TZOFFSETFROM:+0100",
        "TZOFFSETTO:+0200",
        "RRULE:FREQ=YEARLY;INTERVAL=1;BYDAY=-1SU;BYMONTH=3",
        "END:DAYLIGHT",
        "END:VTIMEZONE",
    ]
)


@pytest.mark.parametrize(
    "local",
    [
        "20260101T090000",
        "20260328T120000",
        "20260329T040000",
        "20260715T143000",
        "20261024T230000",
        "20261025T040000",
        "20271231T235900",
    ],
)
def test_vtimezone_rules_match_the_iana_zone(local):
    ev = event(f"DTSTART;TZID=W. Europe Standard Time:{local}", extra=WINDOWS_ZONE)
    expected = datetime.strptime(local, "%Y%m%dT%H%M%S").replace(tzinfo=ZoneInfo("Europe/Berlin"))
    assert ev.start == expected.astimezone(UTC)


@pytest.mark.parametrize(
    "line, start, all_day",
    [
        ("DTSTART:20261130T100000Z", datetime(2026, 11, 30, 10, tzinfo=UTC), False),
        ("DTSTART;TZID=America/New_York:20261130T100000", datetime(2026, 11, 30, 15, tzinfo=UTC), False),
        ('DTSTART;TZID="Europe/London":20260701T100000', datetime(2026, 7, 1, 9, tzinfo=UTC), False),
        # Thunderbird's prefixed zone names
        (
            "DTSTART;TZID=/mozilla.org/20050126_1/Europe/Paris:20260701T100000",
            datetime(2026, 7, 1, 8, tzinfo=UTC),
            False,
        ),
        ("DTSTART;VALUE=DATE:20261130", datetime(2026, 11, 30, tzinfo=UTC), True),
        ("DTSTART:20261130", datetime(2026, 11, 30, tzinfo=UTC), True),
        ("DTSTART:20261130T100000", datetime(2026, 11, 30, 10, tzinfo=UTC), False),  # floating: UTC
        ("DTSTART;TZID=Nowhere/Special:20261130T100000", datetime(2026, 11, 30, 10, tzinfo=UTC), False),
    ],
)
def test_start_times(line, start, all_day):
    ev = event(line)
    assert (ev.start, ev.all_day) == (start, all_day)


def test_end_defaults_and_duration():
    assert event("DTSTART;VALUE=DATE:20261130").end == datetime(2026, 12, 1, tzinfo=UTC)
    assert event("DTSTART:20261130T100000Z").end == datetime(2026, 11, 30, 10, tzinfo=UTC)
    timed = event("DTSTART:20261130T100000Z", "DURATION:PT1H30M")
    assert timed.end - timed.start == timedelta(hours=1, minutes=30)
    assert event("DTSTART:20261130T100000Z", "DURATION:P1W").end == datetime(2026, 12, 7, 10, tzinfo=UTC)


def test_parameters_escapes_and_unfolding():
    ev = event(
        'ATTENDEE;CN="Smith, Anna: CEO";PARTSTAT=TENTATIVE;ROLE=CHAIR:MAILTO:Anna.Smith@Example.com',
        "ATTENDEE;CN=No Status:mailto:nostatus@example.com",
        "ATTENDEE;CN=Ca^'rol^' ^^ Co;PARTSTAT=declined:mailto:carol@example.com",
        "SUMMARY:Budget\\; Q1\\, Q2\\nsecond line\\Nthird \\\\ done",
        "DESCRIPTION:a very long description that Google folds at seventy-five octets so it",
        "  continues on the next line",
        "ORGANIZER;CN=Org:mailto:org@example.com",
    )
    assert ev.attendees == [
        Attendee("anna.smith@example.com", "TENTATIVE", "Smith, Anna: CEO"),
        Attendee("nostatus@example.com", "NEEDS-ACTION", "No Status"),  # RFC 5545 default
        Attendee("carol@example.com", "DECLINED", 'Ca"rol" ^ Co'),  # RFC 6868 caret escapes
    ]
    assert ev.summary == "Budget; Q1, Q2\nsecond line\nthird \\ done"
    assert ev.organizer == "org@example.com"


def test_unfolding_with_tab_and_lf_only():
    text = (
        "BEGIN:VCALENDAR\nMETHOD:PUBLISH\nBEGIN:VEVENT\nUID:abc\n\t123@x\nSUMMARY:Lunch\n"
        "END:VEVENT\nEND:VCALENDAR\n"
    )
    message = parse_calendar(text)
    assert (message.method, message.uid, message.events[0].summary) == ("PUBLISH", "abc123@x", "Lunch")


def test_recurrence_instance_and_series():
    series_and_exception = calendar(
        "UID:series@x",
        "SEQUENCE:0",
        "DTSTART:20261201T090000Z",
        "RRULE:FREQ=DAILY;COUNT=5",
        "END:VEVENT",
        "BEGIN:VEVENT",
        "UID:series@x",
        "SEQUENCE:1",
        "RECURRENCE-ID:20261203T090000Z",
        "DTSTART:20261203T110000Z",
    )
    series, instance = parse_calendar(series_and_exception).events
    assert (series.rrule, series.recurrence_id) == ("FREQ=DAILY;COUNT=5", None)
    assert instance.recurrence_id == datetime(2026, 12, 3, 9, tzinfo=UTC)
    assert (instance.sequence, instance.start) == (1, datetime(2026, 12, 3, 11, tzinfo=UTC))


@pytest.mark.parametrize(
    "method", ["REQUEST", "REPLY", "CANCEL", "PUBLISH", "COUNTER", "DECLINECOUNTER", "ADD"]
)
def test_methods(method):
    assert parse_calendar(calendar("UID:u@x", method=method.lower())).method == method


def test_no_method():
    assert parse_calendar(calendar("UID:u@x", method=None)).method is None


def test_truncated_calendar_keeps_what_was_read():
    text = calendar("UID:cut@x", "SUMMARY:Cut short").split("END:VEVENT")[0]
    assert parse_calendar(text).events[0].summary == "Cut short"


@pytest.mark.parametrize(
    "text, reason",
    [
        ("", "not iCalendar: the calendar part is empty"),
        ("Room 4.01 booked 2026-11-30 10:00", "not iCalendar: it starts with 'Room 4.01 booked"),
        ("<html><body>Invite</body></html>", "not BEGIN:VCALENDAR"),
        (
            "BEGIN:VCALENDAR\r\nBEGIN:VTODO\r\nUID:t@x\r\nEND:VTODO\r\nEND:VCALENDAR\r\n",
            "iCalendar has no VEVENT (components: VTODO)",
        ),
        (
            calendar("SUMMARY:Lunch\\, maybe").replace("UID:u1@test\r\n", ""),
            "VEVENT 'Lunch, maybe' has no UID",
        ),
        (calendar("UID:u@x", "DTSTART:tomorrow"), "DTSTART is not a date or date-time: 'tomorrow'"),
        (calendar("UID:u@x", "DTSTART:20261340T100000Z"), "DTSTART is not a date or date-time"),
    ],
)
def test_errors(text, reason):
    with pytest.raises(CalendarParseError) as raised:
        parse_calendar(text)
    assert reason in str(raised.value)

"""The bot decision, table by table: qualification, overrides, RSVPs, hosted, external, recurring,
the look-ahead edge, and the rules' JSON. Every row states the code it expects, so a broken or
reordered rule fails a named case."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sunny_pipelines.calendar.events import cancelled_row, event_row
from sunny_pipelines.meetings.rules import (
    WANTED_CODES,
    DecisionCode,
    MeetingEvent,
    Override,
    RecordingRules,
    decide,
    external_attendees,
    is_hosted,
    join_at,
    user_response,
)

NOW = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)
USER = "alice@acme.com"
MEET = "https://meet.google.com/abc-defg-hij"
ROOM = "c_1883abc@resource.calendar.google.com"
C = DecisionCode


def person(email: str, response: str = "accepted", *, organizer: bool = False, me: bool = False) -> dict:
    return {
        "email": email,
        "display_name": None,
        "response_status": response,
        "organizer": organizer,
        "self": me,
        "optional": False,
    }


def row(**overrides: Any) -> dict[str, Any]:
    """A qualifying internal one-off meeting hosted by bob@acme.com; alice accepted."""
    base: dict[str, Any] = {
        "event_id": "evt1",
        "calendar_id": USER,
        "ical_uid": "evt1@google.com",
        "status": "confirmed",
        "summary": "Weekly sync",
        "start_time": NOW + timedelta(hours=1),
        "end_time": NOW + timedelta(hours=2),
        "is_all_day": False,
        "organizer_email": "bob@acme.com",
        "attendees": [person("bob@acme.com", organizer=True), person(USER, me=True)],
        "meeting_url": MEET,
        "meeting_platform": "google_meet",
        "recurring_event_id": None,
        "deleted_at": None,
    }
    base.update(overrides)
    return base


def event(**overrides: Any) -> MeetingEvent:
    return MeetingEvent.from_row(row(**overrides))


def external(**overrides: Any) -> MeetingEvent:
    return event(attendees=[*row()["attendees"], person("dan@globex.com", "needsAction")], **overrides)


def recurring(**overrides: Any) -> MeetingEvent:
    return event(recurring_event_id="series42", **overrides)


def check(ev: MeetingEvent, want: bool, code: DecisionCode, rules=None, override=None, now=NOW, user=USER):
    decision = decide(ev, user, rules or RecordingRules(), override, now)
    assert (decision.want_bot, decision.code) == (want, code), decision.reason
    assert decision.want_bot == (decision.code in WANTED_CODES)
    assert decision.reason
    return decision


# --- qualification: each condition alone ----------------------------------------------------

NOT_QUALIFYING = {
    "cancelled": (dict(status="cancelled"), C.CANCELLED),
    "deleted": (dict(deleted_at=NOW - timedelta(hours=1)), C.DELETED),
    "no_meeting_url": (dict(meeting_url=None, meeting_platform=None), C.NO_MEETING_URL),
    "empty_meeting_url": (dict(meeting_url="", meeting_platform=None), C.NO_MEETING_URL),
    "platform_other": (
        dict(meeting_url="https://whereby.com/acme", meeting_platform="other"),
        C.UNSUPPORTED_PLATFORM,
    ),
    "platform_unknown": (dict(meeting_platform=None), C.UNSUPPORTED_PLATFORM),
    "all_day": (
        dict(is_all_day=True, start_time=NOW + timedelta(days=1), end_time=NOW + timedelta(days=2)),
        C.ALL_DAY,
    ),
    "no_start": (dict(start_time=None), C.NO_TIMES),
    "no_end": (dict(end_time=None), C.NO_TIMES),
    "ends_before_start": (dict(end_time=NOW + timedelta(minutes=30)), C.INVALID_TIMES),
    "zero_length": (dict(end_time=NOW + timedelta(hours=1)), C.INVALID_TIMES),
    "ended": (dict(start_time=NOW - timedelta(hours=2), end_time=NOW - timedelta(hours=1)), C.ENDED),
    "ends_exactly_now": (dict(start_time=NOW - timedelta(hours=1), end_time=NOW), C.ENDED),
    "beyond_lookahead": (
        dict(start_time=NOW + timedelta(days=8), end_time=NOW + timedelta(days=8, hours=1)),
        C.BEYOND_LOOKAHEAD,
    ),
    "just_past_lookahead_edge": (
        dict(
            start_time=NOW + timedelta(days=7, microseconds=1),
            end_time=NOW + timedelta(days=7, hours=1),
        ),
        C.BEYOND_LOOKAHEAD,
    ),
}


def test_the_base_meeting_qualifies():
    check(event(), True, C.QUALIFIES_INVITED)


@pytest.mark.parametrize(("overrides", "code"), NOT_QUALIFYING.values(), ids=NOT_QUALIFYING.keys())
@pytest.mark.parametrize("override", [None, Override.ALWAYS, Override.NEVER], ids=["none", "always", "never"])
def test_a_meeting_that_does_not_qualify_gets_no_bot_whatever_the_override(overrides, code, override):
    decision = check(event(**overrides), False, code, override=override)
    if override is Override.ALWAYS:
        assert "override has no effect" in decision.reason


@pytest.mark.parametrize("platform", ["google_meet", "zoom", "teams", "webex"], ids=lambda p: p)
def test_every_platform_attendee_joins_qualifies(platform):
    check(event(meeting_platform=platform), True, C.QUALIFIES_INVITED)


WINDOW = {
    "in_progress": (NOW - timedelta(minutes=30), NOW + timedelta(minutes=30), 7, True),
    "ends_one_microsecond_from_now": (NOW - timedelta(hours=1), NOW + timedelta(microseconds=1), 7, True),
    "starts_now": (NOW, NOW + timedelta(hours=1), 7, True),
    "starts_exactly_at_the_window_edge": (NOW + timedelta(days=7), NOW + timedelta(days=7, hours=1), 7, True),
    "one_day_window_edge": (NOW + timedelta(days=1), NOW + timedelta(days=1, hours=1), 1, True),
    "one_day_window_past_edge": (NOW + timedelta(days=2), NOW + timedelta(days=2, hours=1), 1, False),
    "thirty_day_window": (NOW + timedelta(days=20), NOW + timedelta(days=20, hours=1), 30, True),
}


@pytest.mark.parametrize(("start", "end", "days", "want"), WINDOW.values(), ids=WINDOW.keys())
def test_the_time_window(start, end, days, want):
    rules = RecordingRules(lookahead_days=days)
    check(
        event(start_time=start, end_time=end),
        want,
        C.QUALIFIES_INVITED if want else C.BEYOND_LOOKAHEAD,
        rules=rules,
    )


def test_qualification_order_names_the_most_telling_reason():
    # A cancelled row (cancelled_row) is deleted too, and has no link nor times: "cancelled".
    check(event(status="cancelled", deleted_at=NOW, meeting_url=None, start_time=None), False, C.CANCELLED)
    # An all-day event with a link is "all_day", not "no_times" nor anything about the link.
    check(event(is_all_day=True), False, C.ALL_DAY)
    check(event(meeting_url=None, start_time=None), False, C.NO_MEETING_URL)


# --- overrides -------------------------------------------------------------------------------

OVERRIDES = {
    "never_beats_default_rules": (event(), RecordingRules(), Override.NEVER, False, C.OVERRIDE_NEVER),
    "never_as_stored_string": (event(), RecordingRules(), "never", False, C.OVERRIDE_NEVER),
    "always_beats_an_excluding_rule": (
        external(),
        RecordingRules(record_external=False),
        Override.ALWAYS,
        True,
        C.OVERRIDE_ALWAYS,
    ),
    "always_beats_every_excluding_rule": (
        recurring(),
        RecordingRules(record_not_hosted=False, record_internal=False, record_recurring=False),
        Override.ALWAYS,
        True,
        C.OVERRIDE_ALWAYS,
    ),
    "always_beats_declined": (
        event(attendees=[person("bob@acme.com", organizer=True), person(USER, "declined", me=True)]),
        RecordingRules(),
        Override.ALWAYS,
        True,
        C.OVERRIDE_ALWAYS,
    ),
    "always_beats_only_accepted": (
        event(attendees=[person("bob@acme.com", organizer=True), person(USER, "tentative", me=True)]),
        RecordingRules(only_accepted=True),
        Override.ALWAYS,
        True,
        C.OVERRIDE_ALWAYS,
    ),
    "always_as_stored_string": (
        external(),
        RecordingRules(record_external=False),
        "always",
        True,
        C.OVERRIDE_ALWAYS,
    ),
    "no_override_leaves_the_rule": (
        external(),
        RecordingRules(record_external=False),
        None,
        False,
        C.EXTERNAL_EXCLUDED,
    ),
}


@pytest.mark.parametrize(
    ("ev", "rules", "override", "want", "code"), OVERRIDES.values(), ids=OVERRIDES.keys()
)
def test_overrides(ev, rules, override, want, code):
    check(ev, want, code, rules=rules, override=override)


def test_an_unknown_override_is_an_error():
    with pytest.raises(ValueError):
        decide(event(), USER, RecordingRules(), "sometimes", NOW)


# --- the user's response ---------------------------------------------------------------------


def invited_with(response: str | None) -> MeetingEvent:
    return event(attendees=[person("bob@acme.com", organizer=True), person(USER, response, me=True)])


RESPONSES = {
    "accepted": ("accepted", False, True, C.QUALIFIES_INVITED),
    "accepted_only_accepted": ("accepted", True, True, C.QUALIFIES_INVITED),
    "tentative": ("tentative", False, True, C.QUALIFIES_INVITED),
    "tentative_only_accepted": ("tentative", True, False, C.NOT_ACCEPTED),
    "needs_action": ("needsAction", False, True, C.QUALIFIES_INVITED),
    "needs_action_only_accepted": ("needsAction", True, False, C.NOT_ACCEPTED),
    "missing_response_only_accepted": (None, True, False, C.NOT_ACCEPTED),
    "declined": ("declined", False, False, C.DECLINED),
    "declined_only_accepted": ("declined", True, False, C.DECLINED),
}


@pytest.mark.parametrize(
    ("response", "only_accepted", "want", "code"), RESPONSES.values(), ids=RESPONSES.keys()
)
def test_the_users_response(response, only_accepted, want, code):
    decision = check(invited_with(response), want, code, rules=RecordingRules(only_accepted=only_accepted))
    if code is C.NOT_ACCEPTED:
        assert (response or "needsAction") in decision.reason


def test_the_organizer_counts_as_accepted():
    # Organizer without an attendee entry (Google omits the list for solo events).
    solo = event(organizer_email=USER, attendees=[])
    assert user_response(solo, USER) == "accepted"
    check(solo, True, C.QUALIFIES_HOSTED, rules=RecordingRules(only_accepted=True))
    # Organizer whose own entry was never answered.
    unanswered = event(organizer_email=USER, attendees=[person(USER, "needsAction", organizer=True, me=True)])
    check(unanswered, True, C.QUALIFIES_HOSTED, rules=RecordingRules(only_accepted=True))


def test_an_organizer_who_declined_their_own_meeting_gets_no_bot():
    ev = event(organizer_email=USER, attendees=[person(USER, "declined", organizer=True, me=True)])
    assert user_response(ev, USER) == "declined"
    check(ev, False, C.DECLINED)


# --- who the user is in the event ------------------------------------------------------------


def test_an_alias_is_found_through_the_self_flag_on_the_users_own_calendar():
    ev = event(
        attendees=[person("bob@acme.com", organizer=True), person("alice@acme.io", "declined", me=True)]
    )
    assert user_response(ev, USER) == "declined"
    check(ev, False, C.DECLINED)


def test_on_a_shared_calendar_the_self_flag_is_the_calendars_owner_not_the_user():
    carol_calendar = dict(
        calendar_id="carol@acme.com",
        attendees=[person("bob@acme.com", organizer=True), person("carol@acme.com", me=True)],
    )
    ev = event(**carol_calendar)
    assert user_response(ev, USER) is None
    decision = check(ev, False, C.NOT_INVITED)
    assert "bob@acme.com" in decision.reason
    # The user's explicit per-event choice still wins.
    check(ev, True, C.OVERRIDE_ALWAYS, override=Override.ALWAYS)
    # And on that calendar, the user's own entry (by email) is still theirs.
    ev = event(
        calendar_id="carol@acme.com", attendees=[*carol_calendar["attendees"], person(USER, "declined")]
    )
    check(ev, False, C.DECLINED)


def test_emails_compare_case_insensitively():
    ev = event(
        organizer_email="Alice@ACME.com",
        attendees=[person("ALICE@acme.COM", organizer=True), person("Dan@Globex.COM")],
    )
    assert is_hosted(ev, " alice@Acme.com ")
    assert external_attendees(ev, "ALICE@ACME.COM") == ["dan@globex.com"]
    check(ev, False, C.HOSTED_EXCLUDED, rules=RecordingRules(record_hosted=False), user="Alice@Acme.Com")
    internal = event(attendees=[person("Bob@ACME.COM", organizer=True), person(USER.upper(), me=True)])
    assert external_attendees(internal, USER) == []


# --- hosted / not hosted ---------------------------------------------------------------------

HOSTED = {
    "via_organizer_email": (
        event(organizer_email=USER, attendees=[person(USER, me=True), person("bob@acme.com")]),
        True,
    ),
    "via_attendee_organizer_flag": (
        # A meeting created on a secondary calendar: the organizer is that calendar.
        event(
            organizer_email="c_team@group.calendar.google.com",
            attendees=[person(USER, organizer=True, me=True), person("bob@acme.com")],
        ),
        True,
    ),
    "invited": (event(), False),
    "organizer_flag_on_someone_else": (
        event(organizer_email=None, attendees=[person("bob@acme.com", organizer=True), person(USER)]),
        False,
    ),
}


@pytest.mark.parametrize(("ev", "hosted"), HOSTED.values(), ids=HOSTED.keys())
def test_hosted(ev, hosted):
    assert is_hosted(ev, USER) is hosted
    check(ev, True, C.QUALIFIES_HOSTED if hosted else C.QUALIFIES_INVITED)
    excluding = RecordingRules(record_hosted=False) if hosted else RecordingRules(record_not_hosted=False)
    check(ev, False, C.HOSTED_EXCLUDED if hosted else C.NOT_HOSTED_EXCLUDED, rules=excluding)
    # The rule for the other kind does not touch this one.
    other = RecordingRules(record_not_hosted=False) if hosted else RecordingRules(record_hosted=False)
    check(ev, True, C.QUALIFIES_HOSTED if hosted else C.QUALIFIES_INVITED, rules=other)


# --- external / internal ---------------------------------------------------------------------

SCOPE = {
    "one_attendee_of_another_domain": (external(), ["dan@globex.com"]),
    "all_same_domain": (event(), []),
    "resource_room_ignored": (event(attendees=[*row()["attendees"], person(ROOM)]), []),
    "group_calendar_ignored": (
        event(attendees=[*row()["attendees"], person("acme.com_xyz@group.calendar.google.com")]),
        [],
    ),
    "external_organizer_not_in_attendees": (
        event(organizer_email="eve@partner.org", attendees=[person(USER, me=True)]),
        ["eve@partner.org"],
    ),
    "declined_external_still_counts": (
        event(attendees=[*row()["attendees"], person("dan@globex.com", "declined")]),
        ["dan@globex.com"],
    ),
    "subdomain_is_another_domain": (
        event(attendees=[*row()["attendees"], person("x@eu.acme.com")]),
        ["x@eu.acme.com"],
    ),
    "only_the_user": (event(organizer_email=USER, attendees=[]), []),
    "attendee_without_email_ignored": (event(attendees=[*row()["attendees"], person(None)]), []),
}


@pytest.mark.parametrize(("ev", "outside"), SCOPE.values(), ids=SCOPE.keys())
def test_external_and_internal(ev, outside):
    assert external_attendees(ev, USER) == outside
    wanted = C.QUALIFIES_HOSTED if is_hosted(ev, USER) else C.QUALIFIES_INVITED
    if outside:
        decision = check(ev, False, C.EXTERNAL_EXCLUDED, rules=RecordingRules(record_external=False))
        assert outside[0] in decision.reason
        check(ev, True, wanted, rules=RecordingRules(record_internal=False))
    else:
        check(ev, False, C.INTERNAL_EXCLUDED, rules=RecordingRules(record_internal=False))
        check(ev, True, wanted, rules=RecordingRules(record_external=False))


def test_on_a_public_mailbox_domain_every_other_person_is_external():
    ev = event(
        calendar_id="alice@gmail.com",
        organizer_email="bob@gmail.com",
        attendees=[person("bob@gmail.com", organizer=True), person("alice@gmail.com", me=True)],
    )
    assert external_attendees(ev, "alice@gmail.com") == ["bob@gmail.com"]
    check(ev, False, C.EXTERNAL_EXCLUDED, rules=RecordingRules(record_external=False), user="alice@gmail.com")


# --- recurring -------------------------------------------------------------------------------


def test_a_recurring_instance():
    decision = check(recurring(), False, C.RECURRING_EXCLUDED, rules=RecordingRules(record_recurring=False))
    assert "series42" in decision.reason
    assert "recurring" in check(recurring(), True, C.QUALIFIES_INVITED).reason


def test_a_one_off_meeting_is_not_touched_by_the_recurring_rule():
    check(event(), True, C.QUALIFIES_INVITED, rules=RecordingRules(record_recurring=False))


# --- precedence among the rules --------------------------------------------------------------

PRECEDENCE = {
    "never_before_declined": (
        invited_with("declined"),
        RecordingRules(),
        Override.NEVER,
        C.OVERRIDE_NEVER,
    ),
    "not_invited_before_declined": (
        event(calendar_id="carol@acme.com", attendees=[person("carol@acme.com", "declined", me=True)]),
        RecordingRules(),
        None,
        C.NOT_INVITED,
    ),
    "declined_before_hosted_rules": (
        invited_with("declined"),
        RecordingRules(record_not_hosted=False),
        None,
        C.DECLINED,
    ),
    "not_accepted_before_hosted_rules": (
        invited_with("tentative"),
        RecordingRules(only_accepted=True, record_not_hosted=False),
        None,
        C.NOT_ACCEPTED,
    ),
    "hosted_before_external": (
        external(),
        RecordingRules(record_not_hosted=False, record_external=False),
        None,
        C.NOT_HOSTED_EXCLUDED,
    ),
    "external_before_recurring": (
        external(recurring_event_id="s1"),
        RecordingRules(record_external=False, record_recurring=False),
        None,
        C.EXTERNAL_EXCLUDED,
    ),
    "internal_before_recurring": (
        recurring(),
        RecordingRules(record_internal=False, record_recurring=False),
        None,
        C.INTERNAL_EXCLUDED,
    ),
}


@pytest.mark.parametrize(("ev", "rules", "override", "code"), PRECEDENCE.values(), ids=PRECEDENCE.keys())
def test_precedence(ev, rules, override, code):
    check(ev, False, code, rules=rules, override=override)


def test_a_wanted_reason_names_every_fact():
    reason = check(
        event(organizer_email=USER, attendees=[], recurring_event_id="s9"), True, C.QUALIFIES_HOSTED
    ).reason
    assert "hosted by the user" in reason and "internal" in reason and "recurring" in reason
    reason = check(external(), True, C.QUALIFIES_INVITED).reason
    assert "bob@acme.com" in reason and "dan@globex.com" in reason and "one-off" in reason


# --- rows as the calendar domain writes them, and the clock -------------------------------------


def google_event(**overrides: Any) -> dict[str, Any]:
    base = {
        "id": "g1",
        "status": "confirmed",
        "summary": "Pipeline review",
        "start": {"dateTime": "2025-03-10T14:00:00+01:00"},
        "end": {"dateTime": "2025-03-10T15:00:00+01:00"},
        "organizer": {"email": "bob@acme.com"},
        "attendees": [
            {"email": "bob@acme.com", "organizer": True, "responseStatus": "accepted"},
            {"email": "alice@acme.com", "self": True, "responseStatus": "tentative"},
            {"email": "dan@globex.com", "responseStatus": "needsAction"},
            {"email": ROOM, "resource": True, "responseStatus": "accepted"},
        ],
        "hangoutLink": MEET,
        "recurringEventId": "weekly",
    }
    base.update(overrides)
    return base


def test_a_real_calendar_row():
    ev = MeetingEvent.from_row(event_row("u1", USER, google_event()))
    assert ev.start_time == datetime(2025, 3, 10, 13, 0, tzinfo=UTC)
    assert user_response(ev, USER) == "tentative"
    assert external_attendees(ev, USER) == ["dan@globex.com"]
    check(ev, True, C.QUALIFIES_INVITED)
    check(ev, False, C.NOT_ACCEPTED, rules=RecordingRules(only_accepted=True))
    all_day = google_event(start={"date": "2025-03-11"}, end={"date": "2025-03-12"})
    check(MeetingEvent.from_row(event_row("u1", USER, all_day)), False, C.ALL_DAY)
    gone = cancelled_row("u1", USER, google_event(status="cancelled"), NOW)
    check(MeetingEvent.from_row(gone), False, C.CANCELLED)


def test_naive_datetimes_are_utc():
    naive = event(start_time=datetime(2025, 3, 10, 13, 0), end_time=datetime(2025, 3, 10, 14, 0))
    assert naive.start_time == datetime(2025, 3, 10, 13, 0, tzinfo=UTC)
    check(naive, False, C.ENDED, now=datetime(2025, 3, 10, 14, 0))
    check(naive, True, C.QUALIFIES_INVITED, now=datetime(2025, 3, 10, 13, 30))


def test_join_at():
    assert join_at(event(), RecordingRules(), NOW) == NOW + timedelta(minutes=58)
    assert join_at(event(), RecordingRules(join_minutes_before=0), NOW) == NOW + timedelta(hours=1)
    in_progress = event(start_time=NOW - timedelta(minutes=10))
    assert join_at(in_progress, RecordingRules(), NOW) == NOW


def test_the_decision_is_pure():
    ev, rules = external(), RecordingRules()
    assert decide(ev, USER, rules, None, NOW) == decide(ev, USER, rules, None, NOW)


# --- the rules' JSON -------------------------------------------------------------------------

DEFAULTS = {
    "record_hosted": True,
    "record_not_hosted": True,
    "record_external": True,
    "record_internal": True,
    "record_recurring": True,
    "only_accepted": False,
    "bot_name": "Sunny Notetaker",
    "lookahead_days": 7,
    "join_minutes_before": 2,
}


@pytest.mark.parametrize("data", [None, {}], ids=["none", "empty"])
def test_from_json_defaults(data):
    assert RecordingRules.from_json(data) == RecordingRules()
    assert RecordingRules.from_json(data).to_json() == DEFAULTS


def test_from_json_keeps_given_keys_and_defaults_the_rest():
    rules = RecordingRules.from_json(
        {"record_external": False, "bot_name": "Acme Notes", "lookahead_days": 14}
    )
    assert rules.to_json() == {
        **DEFAULTS,
        "record_external": False,
        "bot_name": "Acme Notes",
        "lookahead_days": 14,
    }
    assert RecordingRules.from_json(rules.to_json()) == rules


BAD_JSON = {
    "unknown_key": ({"record_everything": True}, "record_everything"),
    "bool_as_string": ({"record_hosted": "yes"}, "record_hosted"),
    "bool_as_int": ({"only_accepted": 1}, "only_accepted"),
    "null_bool": ({"record_internal": None}, "record_internal"),
    "int_as_bool": ({"lookahead_days": True}, "lookahead_days"),
    "int_as_string": ({"lookahead_days": "7"}, "lookahead_days"),
    "int_as_float": ({"join_minutes_before": 2.5}, "join_minutes_before"),
    "name_as_int": ({"bot_name": 3}, "bot_name"),
    "empty_name": ({"bot_name": "  "}, "bot_name"),
    "long_name": ({"bot_name": "x" * 101}, "bot_name"),
    "zero_lookahead": ({"lookahead_days": 0}, "lookahead_days"),
    "huge_lookahead": ({"lookahead_days": 366}, "lookahead_days"),
    "negative_join": ({"join_minutes_before": -1}, "join_minutes_before"),
    "not_an_object": ([("record_hosted", True)], "JSON object"),
}


@pytest.mark.parametrize(("data", "named"), BAD_JSON.values(), ids=BAD_JSON.keys())
def test_from_json_rejects(data, named):
    with pytest.raises(ValueError, match=named):
        RecordingRules.from_json(data)


def test_rules_are_validated_when_built_directly_too():
    with pytest.raises(ValueError, match="lookahead_days"):
        RecordingRules(lookahead_days=0)

"""Which meetings get a recording bot: each user's recording rules and the bot decision, as plain
functions from data to data (no Dagster, no database, no HTTP).

``decide(event, user_email, rules, override, now)`` answers, for one `calendar_events` row and one
user, whether Sunny should send an Attendee bot, with a machine-readable code and a sentence naming
the evidence; `meeting_participants` stores both so an operator sees why a bot was or was not sent.

Precedence (the first step that settles the question gives the code and the reason):

1. **Qualification** — is there anything a bot could join? In order: not cancelled, not deleted,
   a meeting URL, on a platform Attendee joins (Zoom, Google Meet, Teams, Webex; ``other`` is not),
   not all-day, a start and an end time, an end after the start, not ended (``end_time <= now``
   has ended; a meeting in progress still qualifies), and starting within the look-ahead window
   (``start_time <= now + lookahead_days``, the edge included). No override can send a bot to a
   meeting that does not qualify: there is nothing to join.
2. **Override never** — the user said so for this event.
3. **Override always** — the user's explicit word for this event beats every rule below,
   including their RSVP: "I declined, send the notetaker" is a main reason to have one.
4. **Not invited** — the user is neither the organizer nor an attendee (an event seen on a
   colleague's shared calendar): a bot goes only to meetings the user is part of.
5. **Declined** — a bot does not attend a meeting the user declined.
6. **Only accepted** — with that rule, tentative and unanswered (``needsAction``) invitations get
   no bot. The organizer counts as accepted unless their own entry says declined.
7. **Hosted / not hosted**, then 8. **external / internal**, then 9. **recurring**.

When a bot is wanted the reason names every fact the rules looked at (hosted or invited,
external or internal, recurring or one-off).

Identifying the user in an event: emails compare case-insensitively. The user's attendee entry
is the one whose email is the user's; failing that, the entry flagged ``self`` — but only on the
user's own calendar (``calendar_id`` unknown, ``primary`` or the user's email), since on a shared
calendar Google flags the calendar's owner, not the user.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

# Attendee's bot joins these; `other` (an unrecognized video link) has no bot to send.
SUPPORTED_PLATFORMS = frozenset({"google_meet", "zoom", "teams", "webex"})

# Google Calendar ids that are not people: rooms and equipment (resource.calendar.google.com),
# secondary and shared calendars (group.calendar.google.com), holidays and other
# (group.v.calendar.google.com, import.calendar.google.com). A room in the invite does not make a
# meeting external. (Room mailboxes of other providers look like people and cannot be told apart.)
_NON_PERSON_DOMAIN_SUFFIX = ".calendar.google.com"

# Mailbox providers shared by strangers: two gmail.com addresses are not colleagues, so for a
# user on one of these every other person is external.
PUBLIC_EMAIL_DOMAINS = frozenset(
    {
        "gmail.com",
        "googlemail.com",
        "outlook.com",
        "hotmail.com",
        "live.com",
        "msn.com",
        "yahoo.com",
        "icloud.com",
        "me.com",
        "mac.com",
        "aol.com",
        "proton.me",
        "protonmail.com",
    }
)

MAX_LOOKAHEAD_DAYS = 365
MAX_JOIN_MINUTES_BEFORE = 60
MAX_BOT_NAME_LENGTH = 100


class Override(StrEnum):
    """A user's per-event choice, stronger than their rules (never stronger than qualification)."""

    ALWAYS = "always"
    NEVER = "never"


class DecisionCode(StrEnum):
    """`meeting_participants` stores one of these per (meeting, user)."""

    # A bot is wanted.
    QUALIFIES_HOSTED = "qualifies_hosted"
    QUALIFIES_INVITED = "qualifies_invited"
    OVERRIDE_ALWAYS = "override_always"
    # The meeting does not qualify: nothing a bot could join.
    DELETED = "deleted"
    CANCELLED = "cancelled"
    NO_MEETING_URL = "no_meeting_url"
    UNSUPPORTED_PLATFORM = "unsupported_platform"
    ALL_DAY = "all_day"
    NO_TIMES = "no_times"
    INVALID_TIMES = "invalid_times"
    ENDED = "ended"
    BEYOND_LOOKAHEAD = "beyond_lookahead"
    # The user's choice for this event.
    OVERRIDE_NEVER = "override_never"
    # The user's rules.
    NOT_INVITED = "not_invited"
    DECLINED = "declined"
    NOT_ACCEPTED = "not_accepted"
    HOSTED_EXCLUDED = "hosted_excluded"
    NOT_HOSTED_EXCLUDED = "not_hosted_excluded"
    EXTERNAL_EXCLUDED = "external_excluded"
    INTERNAL_EXCLUDED = "internal_excluded"
    RECURRING_EXCLUDED = "recurring_excluded"


WANTED_CODES = frozenset(
    {DecisionCode.QUALIFIES_HOSTED, DecisionCode.QUALIFIES_INVITED, DecisionCode.OVERRIDE_ALWAYS}
)


@dataclass(frozen=True)
class RecordingRules:
    """One user's recording rules. The defaults record every meeting the user is part of and has
    not declined, on a supported platform, in the next 7 days; the bot is "Sunny Notetaker" and
    asks to join 2 minutes before the start."""

    record_hosted: bool = True  # meetings the user organizes
    record_not_hosted: bool = True  # meetings the user is invited to
    record_external: bool = True  # some attendee's domain differs from the user's
    record_internal: bool = True  # every attendee shares the user's domain
    record_recurring: bool = True  # instances of a recurring series
    only_accepted: bool = False  # True: tentative and unanswered invitations get no bot
    bot_name: str = "Sunny Notetaker"
    lookahead_days: int = 7
    join_minutes_before: int = 2

    def __post_init__(self) -> None:
        # Validated here, not only in from_json, so that no invalid rules exist at all.
        for f in fields(self):
            value = getattr(self, f.name)
            expected = _FIELD_TYPES[f.name]
            # bool is an int subclass: `"lookahead_days": true` must not pass as 1.
            if type(value) is not expected:
                raise ValueError(
                    f"recording rule {f.name!r} must be {expected.__name__}, got {type(value).__name__} "
                    f"({value!r})"
                )
        if not self.bot_name.strip():
            raise ValueError("recording rule 'bot_name' must not be empty")
        if len(self.bot_name) > MAX_BOT_NAME_LENGTH:
            raise ValueError(f"recording rule 'bot_name' must be at most {MAX_BOT_NAME_LENGTH} characters")
        if not 1 <= self.lookahead_days <= MAX_LOOKAHEAD_DAYS:
            raise ValueError(
                f"recording rule 'lookahead_days' must be between 1 and {MAX_LOOKAHEAD_DAYS}, "
                f"got {self.lookahead_days}"
            )
        if not 0 <= self.join_minutes_before <= MAX_JOIN_MINUTES_BEFORE:
            raise ValueError(
                f"recording rule 'join_minutes_before' must be between 0 and {MAX_JOIN_MINUTES_BEFORE}, "
                f"got {self.join_minutes_before}"
            )

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> RecordingRules:
        """Rules from stored JSON. Missing keys (or no JSON at all) take the defaults; an unknown
        key, a wrong type (``null`` included: omit a key to get its default) or an out-of-range
        value raises ValueError naming the key."""
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise ValueError(f"recording rules must be a JSON object, got {type(data).__name__}")
        unknown = sorted(str(k) for k in data if k not in _FIELD_TYPES)
        if unknown:
            raise ValueError(
                f"unknown recording rule(s): {', '.join(unknown)}; known: {', '.join(_FIELD_TYPES)}"
            )
        return cls(**dict(data))

    def to_json(self) -> dict[str, Any]:
        """Every rule, defaults included: what the frontend shows is what decides."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


_FIELD_TYPES: dict[str, type] = {
    "record_hosted": bool,
    "record_not_hosted": bool,
    "record_external": bool,
    "record_internal": bool,
    "record_recurring": bool,
    "only_accepted": bool,
    "bot_name": str,
    "lookahead_days": int,
    "join_minutes_before": int,
}
assert set(_FIELD_TYPES) == {f.name for f in fields(RecordingRules)}


@dataclass(frozen=True)
class Attendee:
    email: str  # lower-cased, stripped; "" when Google gave none
    display_name: str | None = None
    response_status: str | None = None  # needsAction / declined / tentative / accepted
    organizer: bool = False
    is_self: bool = False  # Google's `self`: the entry of the calendar this copy is on
    optional: bool = False


@dataclass(frozen=True)
class MeetingEvent:
    """What the decision needs from a `calendar_events` row."""

    event_id: str
    calendar_id: str | None = None
    ical_uid: str | None = None
    status: str = "confirmed"
    summary: str | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    is_all_day: bool = False
    organizer_email: str | None = None  # lower-cased
    attendees: tuple[Attendee, ...] = field(default_factory=tuple)
    meeting_url: str | None = None
    meeting_platform: str | None = None
    recurring_event_id: str | None = None
    deleted_at: datetime | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> MeetingEvent:
        """From a `calendar_events` row (`calendar.events.event_row` or a row read back). Missing
        columns take neutral values (a cancelled row carries few). Naive datetimes are UTC,
        as the rows are (SQLite returns them naive)."""
        attendees = tuple(
            Attendee(
                email=_norm_email(a.get("email")),
                display_name=a.get("display_name"),
                response_status=a.get("response_status"),
                organizer=bool(a.get("organizer")),
                is_self=bool(a.get("self")),
                optional=bool(a.get("optional")),
            )
            for a in row.get("attendees") or ()
        )
        return cls(
            event_id=str(row["event_id"]),
            calendar_id=row.get("calendar_id"),
            ical_uid=row.get("ical_uid"),
            status=row.get("status") or "confirmed",
            summary=row.get("summary"),
            start_time=_as_utc(row.get("start_time")),
            end_time=_as_utc(row.get("end_time")),
            is_all_day=bool(row.get("is_all_day")),
            organizer_email=_norm_email(row.get("organizer_email")) or None,
            attendees=attendees,
            meeting_url=row.get("meeting_url") or None,
            meeting_platform=row.get("meeting_platform"),
            recurring_event_id=row.get("recurring_event_id") or None,
            deleted_at=_as_utc(row.get("deleted_at")),
        )


@dataclass(frozen=True)
class Decision:
    want_bot: bool
    code: DecisionCode
    reason: str  # for an operator: names the evidence


# --- helpers -------------------------------------------------------------------------------


def _norm_email(value: Any) -> str:
    return str(value).strip().lower() if value else ""


def _as_utc(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if not isinstance(value, datetime):
        raise ValueError(f"expected a datetime, got {type(value).__name__} ({value!r})")
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def _require_utc(now: datetime) -> datetime:
    moment = _as_utc(now)
    if moment is None:
        raise ValueError("the decision needs the current time")
    return moment


def email_domain(email: str) -> str:
    """The lower-cased domain of an address, "" without one."""
    _, at, domain = _norm_email(email).rpartition("@")
    return domain if at else ""


def is_person(email: str) -> bool:
    """False for rooms, resources and calendars that appear in attendee lists (see above)."""
    domain = email_domain(email)
    return bool(domain) and not domain.endswith(_NON_PERSON_DOMAIN_SUFFIX)


def _on_own_calendar(event: MeetingEvent, user: str) -> bool:
    calendar = (event.calendar_id or "").strip().lower()
    return calendar in ("", "primary", user)


def user_attendee(event: MeetingEvent, user_email: str) -> Attendee | None:
    """The user's entry in the attendee list: by email, else the `self` entry on their own calendar
    (an alias of the user's address)."""
    user = _norm_email(user_email)
    for attendee in event.attendees:
        if attendee.email == user:
            return attendee
    if _on_own_calendar(event, user):
        for attendee in event.attendees:
            if attendee.is_self:
                return attendee
    return None


def is_hosted(event: MeetingEvent, user_email: str) -> bool:
    """The user organizes the event: they are its organizer, or their attendee entry says so."""
    if event.organizer_email and event.organizer_email == _norm_email(user_email):
        return True
    entry = user_attendee(event, user_email)
    return entry is not None and entry.organizer


def is_invited(event: MeetingEvent, user_email: str) -> bool:
    """The user is part of the meeting: its organizer or on its attendee list."""
    return is_hosted(event, user_email) or user_attendee(event, user_email) is not None


def user_response(event: MeetingEvent, user_email: str) -> str | None:
    """The user's RSVP (needsAction / declined / tentative / accepted), None if not invited.
    The organizer counts as accepted unless their own entry says declined (Google lets an
    organizer decline their own meeting)."""
    entry = user_attendee(event, user_email)
    if is_hosted(event, user_email):
        return "declined" if entry is not None and entry.response_status == "declined" else "accepted"
    if entry is None:
        return None
    return entry.response_status or "needsAction"


def external_attendees(event: MeetingEvent, user_email: str) -> list[str]:
    """People (organizer included) whose domain differs from the user's, in invitation order.
    Domains compare case-insensitively and exactly (a subdomain is another domain); rooms and
    calendars are ignored; for a user on a public mailbox domain (gmail.com…) everyone else is
    external. Declined attendees still count: the meeting was opened to them."""
    user = _norm_email(user_email)
    domain = email_domain(user)
    candidates = [a.email for a in event.attendees]
    if event.organizer_email:
        candidates.append(event.organizer_email)
    found: list[str] = []
    for email in candidates:
        if not is_person(email) or email == user or email in found:
            continue
        if domain in PUBLIC_EMAIL_DOMAINS or email_domain(email) != domain:
            found.append(email)
    return found


def is_recurring(event: MeetingEvent) -> bool:
    return event.recurring_event_id is not None


def join_at(event: MeetingEvent, rules: RecordingRules, now: datetime) -> datetime | None:
    """When the bot should join: `join_minutes_before` the start, but not in the past (a meeting
    in progress is joined now). None without a start time."""
    if event.start_time is None:
        return None
    return max(event.start_time - timedelta(minutes=rules.join_minutes_before), _require_utc(now))


# --- the decision --------------------------------------------------------------------------


def _fmt(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _list(emails: list[str], limit: int = 3) -> str:
    shown = ", ".join(emails[:limit])
    return shown + (f" and {len(emails) - limit} more" if len(emails) > limit else "")


def qualification(event: MeetingEvent, now: datetime, lookahead_days: int) -> Decision | None:
    """Why a bot could not join this meeting at all, or None when it qualifies."""

    now = _require_utc(now)

    def no(code: DecisionCode, reason: str) -> Decision:
        return Decision(False, code, reason)

    # A cancelled event's row is also deleted; "cancelled" is the more telling reason.
    if event.status == "cancelled":
        return no(DecisionCode.CANCELLED, "the event is cancelled")
    if event.deleted_at is not None:
        return no(
            DecisionCode.DELETED, f"the event was deleted from the calendar at {_fmt(event.deleted_at)}"
        )
    if not event.meeting_url:
        return no(DecisionCode.NO_MEETING_URL, "the event has no meeting link")
    if event.meeting_platform not in SUPPORTED_PLATFORMS:
        return no(
            DecisionCode.UNSUPPORTED_PLATFORM,
            f"the meeting link {event.meeting_url} is on platform {event.meeting_platform or 'unknown'}, "
            f"which the bot cannot join (supported: {', '.join(sorted(SUPPORTED_PLATFORMS))})",
        )
    if event.is_all_day:
        return no(DecisionCode.ALL_DAY, "the event is an all-day event, not a meeting with a time")
    if event.start_time is None or event.end_time is None:
        missing = "start" if event.start_time is None else "end"
        return no(DecisionCode.NO_TIMES, f"the event has no {missing} time")
    if event.end_time <= event.start_time:
        return no(
            DecisionCode.INVALID_TIMES,
            f"the event ends ({_fmt(event.end_time)}) no later than it starts ({_fmt(event.start_time)})",
        )
    if event.end_time <= now:
        return no(DecisionCode.ENDED, f"the meeting ended at {_fmt(event.end_time)}")
    horizon = now + timedelta(days=lookahead_days)
    if event.start_time > horizon:
        return no(
            DecisionCode.BEYOND_LOOKAHEAD,
            f"the meeting starts at {_fmt(event.start_time)}, beyond the {lookahead_days}-day "
            f"look-ahead window (until {_fmt(horizon)})",
        )
    return None


def decide(
    event: MeetingEvent,
    user_email: str,
    rules: RecordingRules,
    override: Override | str | None,
    now: datetime,
) -> Decision:
    """Whether `user_email` wants a bot in `event`, with the code and reason of the first step of
    the precedence (module docstring) that settles it. Pure: same inputs, same decision."""
    user = _norm_email(user_email)
    if not user:
        raise ValueError("decide() needs the user's email")
    now = _require_utc(now)
    if override is not None:
        override = Override(override)  # a stored string; an unknown one raises ValueError

    unqualified = qualification(event, now, rules.lookahead_days)
    if unqualified is not None:
        if override is Override.ALWAYS:
            return Decision(
                False, unqualified.code, f"{unqualified.reason} (the 'always' override has no effect)"
            )
        return unqualified
    if override is Override.NEVER:
        return Decision(False, DecisionCode.OVERRIDE_NEVER, "the user chose never to record this event")
    if override is Override.ALWAYS:
        return Decision(True, DecisionCode.OVERRIDE_ALWAYS, "the user chose always to record this event")

    hosted = is_hosted(event, user)
    if not hosted and user_attendee(event, user) is None:
        who = f"organizer {event.organizer_email}" if event.organizer_email else "no organizer"
        return Decision(
            False,
            DecisionCode.NOT_INVITED,
            f"the user is neither the organizer ({who}) nor an attendee of this event "
            f"(calendar {event.calendar_id or 'unknown'})",
        )

    response = user_response(event, user)
    if response == "declined":
        return Decision(False, DecisionCode.DECLINED, "the user declined this meeting")
    if rules.only_accepted and response != "accepted":
        return Decision(
            False,
            DecisionCode.NOT_ACCEPTED,
            f"the user's response is {response}, and the user records only meetings they accepted",
        )

    host = "the user" if hosted else (event.organizer_email or "someone else")
    if hosted and not rules.record_hosted:
        return Decision(
            False,
            DecisionCode.HOSTED_EXCLUDED,
            "the user hosts this meeting and does not record meetings they host",
        )
    if not hosted and not rules.record_not_hosted:
        return Decision(
            False,
            DecisionCode.NOT_HOSTED_EXCLUDED,
            f"hosted by {host}, not the user, and the user does not record meetings they don't host",
        )

    external = external_attendees(event, user)
    if external:
        scope = f"external meeting (attendee {_list(external)})"
    else:
        scope = f"internal meeting (nobody outside {email_domain(user) or 'the user'})"
    if external and not rules.record_external:
        return Decision(
            False, DecisionCode.EXTERNAL_EXCLUDED, f"{scope} and the user does not record external meetings"
        )
    if not external and not rules.record_internal:
        return Decision(
            False, DecisionCode.INTERNAL_EXCLUDED, f"{scope} and the user does not record internal meetings"
        )

    recurring = is_recurring(event)
    if recurring and not rules.record_recurring:
        return Decision(
            False,
            DecisionCode.RECURRING_EXCLUDED,
            f"recurring meeting (series {event.recurring_event_id}) and the user does not record "
            "recurring meetings",
        )

    facts = [
        "hosted by the user" if hosted else f"the user is invited (hosted by {host}, response {response})",
        scope,
        f"recurring (series {event.recurring_event_id})" if recurring else "one-off",
    ]
    kinds = ["hosted" if hosted else "not-hosted", "external" if external else "internal"]
    kinds += ["recurring"] if recurring else []
    return Decision(
        True,
        DecisionCode.QUALIFIES_HOSTED if hosted else DecisionCode.QUALIFIES_INVITED,
        f"{'; '.join(facts)}; the user records {', '.join(kinds[:-1])} and {kinds[-1]} meetings",
    )

"""Reading the iCalendar (RFC 5545) part of a meeting email: its iTIP METHOD (RFC 5546) and events.

Only what processing needs: who organises, who answered what, when, and which UID/SEQUENCE the
message is about. Times become aware UTC datetimes; an all-day date becomes UTC midnight (as in
`calendar/events.py`). A TZID is read as an IANA zone when it is one, else through the message's
own VTIMEZONE (Outlook's "W. Europe Standard Time"); a floating time or an unknown TZID is read
as UTC.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


class CalendarParseError(ValueError):
    """The text is not usable iCalendar; the message says why."""


class Attendee(NamedTuple):
    email: str
    partstat: str  # ACCEPTED, DECLINED, TENTATIVE, NEEDS-ACTION, DELEGATED, ...
    name: str | None


@dataclass(frozen=True)
class CalendarEvent:
    uid: str
    sequence: int = 0
    summary: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    all_day: bool = False
    organizer: str | None = None  # address, lower-cased
    attendees: list[Attendee] = field(default_factory=list)
    recurrence_id: datetime | None = None  # set when the event is one instance of a series
    status: str | None = None  # CONFIRMED, TENTATIVE, CANCELLED
    rrule: str | None = None  # the series rule, as written (None: not recurring)
    location: str | None = None


@dataclass(frozen=True)
class CalendarMessage:
    method: str | None  # REQUEST, REPLY, CANCEL, PUBLISH, COUNTER, ... (None: not an iTIP message)
    events: list[CalendarEvent]

    @property
    def uid(self) -> str:
        return self.events[0].uid


class _Line(NamedTuple):
    name: str  # upper-cased
    params: dict[str, str]  # names upper-cased; a list value keeps its commas
    value: str


_Observance = tuple[str, list[_Line]]  # ("STANDARD" or "DAYLIGHT", its properties)


def parse_calendar(text: str) -> CalendarMessage:
    """The METHOD and VEVENTs of an iCalendar text; raises CalendarParseError with the reason."""
    unfolded = _unfold(text)
    if not unfolded:
        raise CalendarParseError("not iCalendar: the calendar part is empty")
    first = _parse_line(unfolded[0])
    if first is None or (first.name, first.value.strip().upper()) != ("BEGIN", "VCALENDAR"):
        raise CalendarParseError(f"not iCalendar: it starts with {unfolded[0][:80]!r}, not BEGIN:VCALENDAR")
    lines = [line for line in map(_parse_line, unfolded) if line is not None]

    method: str | None = None
    events: list[list[_Line]] = []
    timezones: dict[str, list[_Observance]] = {}  # VTIMEZONE TZID -> its observances
    observances: list[_Observance] = []  # of the VTIMEZONE being read
    components: list[str] = []
    stack: list[tuple[str, list[_Line]]] = []  # open components and their own properties
    for line in lines:
        if line.name == "BEGIN":
            stack.append((line.value.upper(), []))
            continue
        if line.name == "END":
            if not stack:
                break
            name, props = stack.pop()
            components.append(name)
            parent = stack[-1][0] if stack else None
            if name == "VEVENT" and parent == "VCALENDAR":
                events.append(props)
            elif name in ("STANDARD", "DAYLIGHT") and parent == "VTIMEZONE":
                observances.append((name, props))
            elif name == "VTIMEZONE":
                tzid = _first(props, "TZID")
                if tzid:
                    timezones[tzid.value.strip()] = observances
                observances = []
            continue
        if not stack:
            continue
        if stack[-1][0] == "VCALENDAR" and line.name == "METHOD":
            method = line.value.strip().upper() or None
        stack[-1][1].append(line)
    # A truncated part may lack its END lines: keep the events read so far.
    events.extend(props for name, props in reversed(stack) if name == "VEVENT")

    if not events:
        seen = ", ".join(sorted(set(components) - {"VCALENDAR"})) or "none"
        raise CalendarParseError(f"iCalendar has no VEVENT (components: {seen})")
    zones = _Zones(timezones)
    return CalendarMessage(method=method, events=[_event(props, zones) for props in events])


# --- content lines ---------------------------------------------------------------------------


def _unfold(text: str) -> list[str]:
    """Content lines: a line break followed by a space or tab continues the previous line."""
    unfolded: list[str] = []
    for raw in text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if raw[:1] in (" ", "\t") and unfolded:
            unfolded[-1] += raw[1:]
        elif raw.strip():
            unfolded.append(raw)
    return unfolded


def _parse_line(line: str) -> _Line | None:
    """NAME;PARAM=a,"b:c";OTHER=d:value (a quoted parameter value may hold ':' and ';')."""
    match = re.match(r"[A-Za-z0-9-]+", line)
    if not match:
        return None
    name, i, params = match.group(0).upper(), match.end(), {}
    while i < len(line) and line[i] == ";":
        key_end = line.find("=", i)
        if key_end < 0:
            return None
        key, i, value = line[i + 1 : key_end].strip().upper(), key_end + 1, []
        while i < len(line) and line[i] not in ":;":
            if line[i] == '"':
                close = line.find('"', i + 1)
                close = len(line) if close < 0 else close
                value.append(line[i + 1 : close])
                i = close + 1
            else:
                value.append(line[i])
                i += 1
        params[key] = _caret_decode("".join(value))
    if i >= len(line) or line[i] != ":":
        return None
    return _Line(name, params, line[i + 1 :])


def _caret_decode(value: str) -> str:
    """RFC 6868 escapes in parameter values: ^n, ^' and ^^."""
    return re.sub(r"\^([n'^])", lambda m: {"n": "\n", "'": '"', "^": "^"}[m.group(1)], value)


def _unescape(value: str) -> str:
    """TEXT values: \\n, \\N, \\, \\; and \\\\ (RFC 5545 3.3.11)."""
    return re.sub(r"\\([nN,;\\])", lambda m: "\n" if m.group(1) in "nN" else m.group(1), value)


def _first(props: list[_Line], name: str) -> _Line | None:
    return next((line for line in props if line.name == name), None)


def _text(props: list[_Line], name: str) -> str | None:
    line = _first(props, name)
    return (_unescape(line.value).strip() or None) if line else None


def _address(value: str) -> str:
    return re.sub(r"^mailto:", "", value.strip(), flags=re.IGNORECASE).strip().lower()


# --- events ----------------------------------------------------------------------------------


def _event(props: list[_Line], zones: _Zones) -> CalendarEvent:
    uid = _text(props, "UID")
    summary = _text(props, "SUMMARY")
    if not uid:
        raise CalendarParseError(f"VEVENT {summary or '(no summary)'!r} has no UID")
    start, all_day = _when(_first(props, "DTSTART"), zones)
    end, _ = _when(_first(props, "DTEND"), zones)
    duration = _first(props, "DURATION")
    if end is None and start is not None:
        if duration:
            end = start + _duration(duration.value)
        else:  # RFC 5545 3.6.1: a date lasts one day, a date-time is an instant
            end = start + timedelta(days=1) if all_day else start
    organizer = _first(props, "ORGANIZER")
    sequence = _first(props, "SEQUENCE")
    status = _first(props, "STATUS")
    rrule = _first(props, "RRULE")
    return CalendarEvent(
        uid=uid,
        sequence=int(sequence.value) if sequence and sequence.value.strip().isdigit() else 0,
        summary=summary,
        start=start,
        end=end,
        all_day=all_day,
        organizer=(_address(organizer.value) or None) if organizer else None,
        attendees=[
            Attendee(
                email=_address(line.value),
                partstat=line.params.get("PARTSTAT", "NEEDS-ACTION").upper(),
                name=line.params.get("CN") or None,
            )
            for line in props
            if line.name == "ATTENDEE" and _address(line.value)
        ],
        recurrence_id=_when(_first(props, "RECURRENCE-ID"), zones)[0],
        status=(status.value.strip().upper() or None) if status else None,
        rrule=(rrule.value.strip() or None) if rrule else None,
        location=_text(props, "LOCATION"),
    )


def _when(line: _Line | None, zones: _Zones) -> tuple[datetime | None, bool]:
    """(UTC instant, is_all_day) of a DTSTART-like property."""
    if line is None:
        return None, False
    value = line.value.strip()
    try:
        if line.params.get("VALUE", "").upper() == "DATE" or re.fullmatch(r"\d{8}", value):
            return datetime.combine(_date(value), time.min, tzinfo=UTC), True
        match = re.fullmatch(r"(\d{8})T(\d{2})(\d{2})(\d{2})(Z?)", value, flags=re.IGNORECASE)
        if not match:
            raise ValueError(value)
        local = datetime.combine(_date(match.group(1)), time(*(int(g) for g in match.groups()[1:4])))
    except ValueError:
        raise CalendarParseError(f"{line.name} is not a date or date-time: {value!r}") from None
    if match.group(5):
        return local.replace(tzinfo=UTC), False
    tzid = line.params.get("TZID")
    zone = zones.get(tzid) if tzid else None
    return local.replace(tzinfo=zone or UTC).astimezone(UTC), False


def _date(value: str) -> date:
    return date(int(value[:4]), int(value[4:6]), int(value[6:8]))


def _duration(value: str) -> timedelta:
    """RFC 5545 DURATION: [+-]P[nW][nD][T[nH][nM][nS]]."""
    match = re.fullmatch(
        r"([+-]?)P(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?", value.strip().upper()
    )
    if not match:
        raise CalendarParseError(f"DURATION is not a duration: {value!r}")
    weeks, days, hours, minutes, seconds = (int(g or 0) for g in match.groups()[1:])
    delta = timedelta(weeks=weeks, days=days, hours=hours, minutes=minutes, seconds=seconds)
    return -delta if match.group(1) == "-" else delta


# --- time zones ------------------------------------------------------------------------------

_WEEKDAYS = ["MO", "TU", "WE", "TH", "FR", "SA", "SU"]


class _Zones:
    """TZID -> tzinfo: an IANA name, else the message's VTIMEZONE, else None."""

    def __init__(self, vtimezones: dict[str, list[_Observance]]) -> None:
        self._vtimezones = vtimezones

    def get(self, tzid: str) -> tzinfo | None:
        tzid = tzid.strip()
        # Some clients prefix the IANA name: "/mozilla.org/20050126_1/Europe/London".
        for candidate in (tzid, "/".join(tzid.split("/")[-2:])):
            try:
                return ZoneInfo(candidate)
            except (ZoneInfoNotFoundError, ValueError, OSError):
                continue
        observances = self._vtimezones.get(tzid)
        return _VTimezone(observances) if observances else None


class _VTimezone(tzinfo):
    """A VTIMEZONE's STANDARD/DAYLIGHT observances, with yearly BYMONTH/BYDAY rules (what
    Outlook and Google send); RDATE lists and other rules fall back to the observance's DTSTART."""

    def __init__(self, observances: list[_Observance]) -> None:
        self._observances = []
        for kind, props in observances:
            start, offset, rule = (
                _first(props, "DTSTART"),
                _first(props, "TZOFFSETTO"),
                _first(props, "RRULE"),
            )
            if start and offset and re.fullmatch(r"\d{8}T\d{6}", start.value.strip()):
                self._observances.append(
                    (
                        kind,
                        datetime.strptime(start.value.strip(), "%Y%m%dT%H%M%S"),
                        _offset(offset.value),
                        rule,
                    )
                )

    def _onset(self, start: datetime, rule: _Line | None, year: int) -> datetime | None:
        if rule is None:
            return start if start.year <= year else None
        parts = dict(part.split("=", 1) for part in rule.value.upper().split(";") if "=" in part)
        byday = re.fullmatch(r"([+-]?\d+)?(MO|TU|WE|TH|FR|SA|SU)", parts.get("BYDAY", ""))
        if parts.get("FREQ") != "YEARLY" or not byday or not parts.get("BYMONTH", "").isdigit():
            return start if start.year <= year else None
        month, nth, weekday = int(parts["BYMONTH"]), int(byday.group(1) or 1), _WEEKDAYS.index(byday.group(2))
        if nth > 0:
            first = date(year, month, 1)
            day = first + timedelta(days=(weekday - first.weekday()) % 7 + 7 * (nth - 1))
        else:
            last = (date(year + month // 12, month % 12 + 1, 1)) - timedelta(days=1)
            day = last - timedelta(days=(last.weekday() - weekday) % 7 + 7 * (-nth - 1))
        return datetime.combine(day, start.time())

    def utcoffset(self, dt: datetime | None) -> timedelta:
        if dt is None or not self._observances:
            return timedelta(0)
        local = dt.replace(tzinfo=None)
        best: tuple[datetime, timedelta] | None = None
        for _, start, offset, rule in self._observances:
            for year in (local.year, local.year - 1):
                onset = self._onset(start, rule, year)
                if onset is not None and onset <= local:
                    if best is None or onset > best[0]:
                        best = (onset, offset)
                    break
        if best is None:  # before every onset: the standard offset is the best guess
            standard = [offset for kind, _, offset, _ in self._observances if kind == "STANDARD"]
            return standard[0] if standard else self._observances[0][2]
        return best[1]

    def dst(self, dt: datetime | None) -> timedelta:
        return timedelta(0)

    def tzname(self, dt: datetime | None) -> str | None:
        return None


def _offset(value: str) -> timedelta:
    match = re.fullmatch(r"([+-])(\d{2})(\d{2})(\d{2})?", value.strip())
    if not match:
        raise CalendarParseError(f"TZOFFSETTO is not an offset: {value!r}")
    delta = timedelta(
        hours=int(match.group(2)), minutes=int(match.group(3)), seconds=int(match.group(4) or 0)
    )
    return -delta if match.group(1) == "-" else delta

"""Expansion of Google Calendar recurring events (RRULE / RDATE / EXDATE lines) into instances."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any

from dateutil.rrule import rrulestr

from sunny_pipelines.sandbox.core.common import format_datetime, get_zone

# Expansion caps, so an endless series stays cheap to list.
MAX_INSTANCES = 500
HORIZON = timedelta(days=730)

_UNTIL = re.compile(r"UNTIL=([0-9TZ]+)", re.IGNORECASE)


@dataclass(frozen=True)
class Occurrence:
    suffix: str  # appended to the series id: `20261130T100000Z` (timed) or `20261130` (all-day)
    original_start: dict[str, str]
    start: dict[str, str]
    end: dict[str, str]
    start_ts: float
    end_ts: float
    excluded: bool  # removed by an EXDATE line: a cancelled instance


def is_all_day(when: dict[str, Any]) -> bool:
    return "date" in when and "dateTime" not in when


def parse_when(when: dict[str, Any], default_tz: str) -> datetime | date:
    """A `start` / `end` object as an aware datetime (timed) or a date (all-day)."""
    if is_all_day(when):
        return date.fromisoformat(when["date"])
    dt = datetime.fromisoformat(str(when["dateTime"]).replace("z", "Z"))
    zone = get_zone(when.get("timeZone") or default_tz)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=zone)
    return dt.astimezone(zone)


def when_ts(when: dict[str, Any], default_tz: str) -> float:
    value = parse_when(when, default_tz)
    if isinstance(value, datetime):
        return value.timestamp()
    return datetime.combine(value, time(), tzinfo=get_zone(default_tz)).timestamp()


def _parse_date_values(line: str, zone: tzinfo, all_day: bool) -> list[datetime | date]:
    """Values of an EXDATE / RDATE line as aware datetimes (timed series) or dates (all-day series)."""
    head, _, values = line.partition(":")
    params = dict(p.split("=", 1) for p in head.split(";")[1:] if "=" in p)
    value_zone = get_zone(params["TZID"]) if "TZID" in params else zone
    out: list[datetime | date] = []
    for raw in values.split(","):
        raw = raw.strip()
        if not raw:
            continue
        if len(raw) == 8:
            d = datetime.strptime(raw, "%Y%m%d").date()
            out.append(d if all_day else datetime.combine(d, time(), tzinfo=value_zone))
            continue
        utc = raw.endswith("Z")
        dt = datetime.strptime(raw.rstrip("Z"), "%Y%m%dT%H%M%S")
        dt = dt.replace(tzinfo=UTC if utc else value_zone)
        out.append(dt.astimezone(zone).date() if all_day else dt)
    return out


def _fix_until(rule: str, zone: tzinfo, all_day: bool) -> str:
    """dateutil needs UNTIL in UTC for an aware DTSTART and floating for a date DTSTART."""

    def repl(m: re.Match[str]) -> str:
        value = m.group(1).upper()
        if all_day:
            return "UNTIL=" + value[:8]
        if value.endswith("Z"):
            return "UNTIL=" + value
        if len(value) == 8:
            local = datetime.combine(datetime.strptime(value, "%Y%m%d").date(), time(23, 59, 59))
        else:
            local = datetime.strptime(value, "%Y%m%dT%H%M%S")
        return "UNTIL=" + local.replace(tzinfo=zone).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")

    return _UNTIL.sub(repl, rule)


def expand(
    start: dict[str, Any],
    end: dict[str, Any],
    recurrence: list[str],
    default_tz: str,
    anchor: datetime,
    limit: int = MAX_INSTANCES,
) -> list[Occurrence]:
    """Instances of a series, in start order, capped at `limit` and at two years past `anchor`.

    Raises ValueError on a malformed rule.
    """
    all_day = is_all_day(start)
    tz_name = start.get("timeZone") or default_tz
    zone = get_zone(tz_name)
    cal_zone = get_zone(default_tz)
    first = parse_when(start, default_tz)
    last = parse_when(end, default_tz)
    if all_day:
        assert isinstance(first, date) and isinstance(last, date)
        dtstart: datetime = datetime.combine(first, time())
        span_days = max((last - first).days, 1)
        horizon = datetime.combine(max(first, anchor.date()), time()) + HORIZON
    else:
        assert isinstance(first, datetime) and isinstance(last, datetime)
        dtstart = first
        duration = last - first
        horizon = max(first, anchor.astimezone(zone)) + HORIZON

    starts: set[datetime] = set()
    excluded: set[Any] = set()
    for line in recurrence:
        name = line.split(":", 1)[0].split(";", 1)[0].strip().upper()
        if name == "RRULE":
            rule = rrulestr(_fix_until(line.split(":", 1)[1], zone, all_day), dtstart=dtstart)
            for n, dt in enumerate(rule):
                if dt > horizon or n >= limit:
                    break
                starts.add(dt)
        elif name in ("RDATE", "EXDATE"):
            values = _parse_date_values(line, zone, all_day)
            if name == "RDATE":
                starts.update(
                    datetime.combine(v, time()) if all_day and isinstance(v, date) else v  # type: ignore[misc]
                    for v in values
                )
            else:
                excluded.update(v if all_day else v.astimezone(UTC) for v in values)  # type: ignore[union-attr]
        else:
            raise ValueError(f"unsupported recurrence line: {line!r}")

    out: list[Occurrence] = []
    for dt in sorted(starts)[:limit]:
        if all_day:
            d = dt.date()
            start_when = {"date": d.isoformat()}
            end_when = {"date": (d + timedelta(days=span_days)).isoformat()}
            start_ts = datetime.combine(d, time(), tzinfo=cal_zone).timestamp()
            end_ts = datetime.combine(d + timedelta(days=span_days), time(), tzinfo=cal_zone).timestamp()
            out.append(
                Occurrence(
                    d.strftime("%Y%m%d"), start_when, start_when, end_when, start_ts, end_ts, d in excluded
                )
            )
        else:
            occ = timed_occurrence(dt.astimezone(zone), duration, tz_name, end.get("timeZone") or tz_name)
            if dt.astimezone(UTC) in excluded:
                occ = dataclasses.replace(occ, excluded=True)
            out.append(occ)
    return out


def timed_occurrence(local: datetime, duration: timedelta, tz_name: str, end_tz_name: str) -> Occurrence:
    """The occurrence of a timed series starting at `local` (aware, in the series' zone)."""
    stop = (local + duration).astimezone(local.tzinfo)
    start_when = {"dateTime": format_datetime(local), "timeZone": tz_name}
    end_when = {"dateTime": format_datetime(stop), "timeZone": end_tz_name}
    suffix = local.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return Occurrence(suffix, start_when, start_when, end_when, local.timestamp(), stop.timestamp(), False)

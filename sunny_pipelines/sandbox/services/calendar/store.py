"""Calendar v3 state and semantics: calendars, calendar lists, events, recurrence, sync tokens.

Every change to a calendar takes the next value of that calendar's change feed (`core.change_feed`,
the helper Drive's page tokens and Gmail's history ids use too); each event, each modified or
cancelled instance, and each tombstone records the sequence of its last change. A sync token names a
sequence number S, so the incremental list is "everything whose sequence is > S". A page token names
the snapshot sequence of the first page plus the last key returned, so pagination is stateless and
consistent: anything changed after the snapshot is left for the next incremental sync. A user's
calendar list has its own feed.

All methods take the world lock. Stored resource dicts are never mutated in place (copy-on-write), so
a list answer may be serialised after the lock is released.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import quote

from sunny_pipelines.sandbox.core.change_feed import ChangeFeed
from sunny_pipelines.sandbox.core.channels import WatchTarget
from sunny_pipelines.sandbox.core.common import (
    ApiError,
    bad_request,
    base32hex_id,
    etag_for,
    format_datetime,
    get_zone,
    is_valid_event_id,
    meet_code,
    not_found,
    parse_rfc3339,
    rfc3339_millis,
    stable_id,
)
from sunny_pipelines.sandbox.services.calendar.recurrence import (
    Occurrence,
    expand,
    is_all_day,
    parse_when,
    when_ts,
)

if TYPE_CHECKING:
    from sunny_pipelines.sandbox.core.accounts import User
    from sunny_pipelines.sandbox.world import World

# What a push channel can watch (see CalendarService.watch_kinds).
EVENTS_WATCH = "calendar-events"  # one calendar's events; named by calendar id
CALENDAR_LIST_WATCH = "calendar-list"  # one user's calendar list; named by user id

CALENDAR_SCOPES = frozenset(
    {
        "https://www.googleapis.com/auth/calendar",
        "https://www.googleapis.com/auth/calendar.readonly",
        "https://www.googleapis.com/auth/calendar.events",
        "https://www.googleapis.com/auth/calendar.events.readonly",
    }
)
_WRITE_SCOPES = frozenset(
    {"https://www.googleapis.com/auth/calendar", "https://www.googleapis.com/auth/calendar.events"}
)
ROLE_RANK = {"freeBusyReader": 0, "reader": 1, "writer": 2, "owner": 3}

MAX_EVENTS_PAGE = 2500
MAX_LIST_PAGE = 250
MEET_ICON = "https://fonts.gstatic.com/s/i/productlogos/meet_2020q4/v6/web-512dp/logo_meet_2020q4_color_2x_web_512dp.png"

# Google's key order, so answers read like the real thing.
_KEY_ORDER = [
    "kind", "etag", "id", "status", "htmlLink", "created", "updated", "summary", "description",
    "location", "colorId", "creator", "organizer", "start", "end", "endTimeUnspecified", "recurrence",
    "recurringEventId", "originalStartTime", "transparency", "visibility", "iCalUID", "sequence",
    "attendees", "guestsCanInviteOthers", "guestsCanModify", "guestsCanSeeOtherGuests", "hangoutLink",
    "conferenceData", "reminders", "eventType",
]  # fmt: skip
_READ_ONLY = (
    "kind", "etag", "id", "htmlLink", "created", "updated", "creator", "organizer", "iCalUID",
    "recurringEventId", "originalStartTime",
)  # fmt: skip
_PASSTHROUGH = (
    "summary", "description", "location", "colorId", "transparency", "visibility", "recurrence",
    "extendedProperties", "guestsCanInviteOthers", "guestsCanModify", "guestsCanSeeOtherGuests",
    "anyoneCanAddSelf", "source", "attachments", "reminders", "eventType", "endTimeUnspecified",
    "sequence", "status", "start", "end", "attendees", "conferenceData", "hangoutLink",
)  # fmt: skip


# ---------------------------------------------------------------- data


@dataclass
class Override:
    """A modified or cancelled instance of a recurring event."""

    resource: dict[str, Any]
    seq: int


@dataclass
class StoredEvent:
    resource: dict[str, Any]  # the single event or the series master, as events.get returns it
    seq: int
    overrides: dict[str, Override] = field(default_factory=dict)
    mirrors: set[str] = field(default_factory=set)  # attendee calendars holding a copy (organizer side)
    # The series' occurrences, valid while (seq, calendar time zone) equals `_expansion_key`.
    _expansion_key: tuple[int, str] | None = None
    _expansion: list[Occurrence] = field(default_factory=list)

    @property
    def id(self) -> str:
        return self.resource["id"]

    @property
    def cancelled(self) -> bool:
        return self.resource.get("status") == "cancelled"

    @property
    def recurring(self) -> bool:
        return bool(self.resource.get("recurrence"))


@dataclass
class ItemsCache:
    """A calendar's listing items for one `singleEvents` flag, valid while the feed is at `seq`."""

    seq: int
    items: list[_Item]


@dataclass
class Calendar:
    id: str
    summary: str
    time_zone: str
    feed: ChangeFeed  # every change to the calendar's events advances it; sync tokens name it
    kind: str = "secondary"  # primary | secondary | holidays
    description: str = ""
    owner_id: str | None = None
    created: float = 0.0
    updated: float = 0.0
    deleted: bool = False
    events: dict[str, StoredEvent] = field(default_factory=dict)
    # Listing items by singleEvents flag (every change advances the feed, which invalidates them).
    _items_cache: dict[bool, ItemsCache] = field(default_factory=dict)

    @property
    def seq(self) -> int:
        return self.feed.seq

    def bump(self, now: float) -> int:
        """Record one change; its sequence number."""
        self.updated = now
        return self.feed.advance()


@dataclass
class CalendarListEntry:
    calendar_id: str
    access_role: str
    primary: bool = False
    selected: bool = True
    hidden: bool = False
    color_id: str = "14"
    background_color: str = "#9fe1e7"
    foreground_color: str = "#000000"
    seq: int = 0
    updated: float = 0.0
    deleted: bool = False


@dataclass
class CalendarList:
    feed: ChangeFeed  # every subscribe / unsubscribe advances it
    entries: dict[str, CalendarListEntry] = field(default_factory=dict)  # by calendar id


class _Item:
    """One entry of an events list (event, instance or tombstone) with its sort and filter keys."""

    __slots__ = (
        "seq", "id", "cancelled", "resource", "tombstone", "start_ts", "end_ts", "instance",
        "series_cancelled",
    )  # fmt: skip

    def __init__(
        self,
        seq: int,
        id: str,
        cancelled: bool,
        resource: dict[str, Any] | None,  # the full event; None for a cancelled generated instance
        tombstone: dict[str, Any],  # how it appears once cancelled
        start_ts: float,
        end_ts: float,
        instance: bool = False,
        series_cancelled: bool = False,
    ) -> None:
        self.seq = seq
        self.id = id
        self.cancelled = cancelled
        self.resource = resource
        self.tombstone = tombstone
        self.start_ts = start_ts
        self.end_ts = end_ts
        self.instance = instance
        self.series_cancelled = series_cancelled

    def out(self) -> dict[str, Any]:
        return self.tombstone if self.cancelled or self.resource is None else self.resource

    def updated_ts(self) -> float:
        text = (self.resource or {}).get("updated") or self.tombstone.get("updated")
        return parse_rfc3339(text).timestamp() if text else 0.0


# ---------------------------------------------------------------- pure helpers


def _override_item(ev: StoredEvent, instance_id: str, override: Override, tz: str, seq: int) -> _Item:
    """The list item of a modified or cancelled instance (cancelled too when its series is)."""
    res = override.resource
    return _Item(
        seq,
        instance_id,
        ev.cancelled or res.get("status") == "cancelled",
        res,
        tombstone(res),
        when_ts(res["start"], tz),
        when_ts(res["end"], tz),
        instance=True,
        series_cancelled=ev.cancelled,
    )


def html_link(event_id: str, calendar_id: str) -> str:
    eid = base64.urlsafe_b64encode(f"{event_id} {calendar_id}".encode()).decode().rstrip("=")
    return f"https://www.google.com/calendar/event?eid={eid}"


def ordered(resource: dict[str, Any]) -> dict[str, Any]:
    out = {k: resource[k] for k in _KEY_ORDER if k in resource}
    out.update((k, v) for k, v in resource.items() if k not in out)
    return out


def view_for(resource: dict[str, Any], calendar_id: str, etag: str | None = None) -> dict[str, Any]:
    """The copy of an event as it appears on `calendar_id`: `self` flags and htmlLink are per calendar."""
    out = dict(resource)
    for key in ("organizer", "creator"):
        if key in out:
            person = dict(out[key])
            if person.get("email") == calendar_id:
                person["self"] = True
            else:
                person.pop("self", None)
            out[key] = person
    if "attendees" in out:
        attendees = []
        for a in out["attendees"]:
            a = dict(a)
            if a.get("email") == calendar_id:
                a["self"] = True
            else:
                a.pop("self", None)
            attendees.append(a)
        out["attendees"] = attendees
    if "id" in out:
        out["htmlLink"] = html_link(out["id"], calendar_id)
    if etag:
        out["etag"] = etag
    return out


def tombstone(resource: dict[str, Any]) -> dict[str, Any]:
    """How a cancelled event appears in an incremental list."""
    out = {
        "kind": "calendar#event",
        "etag": resource.get("etag"),
        "id": resource["id"],
        "status": "cancelled",
    }
    for key in ("recurringEventId", "originalStartTime"):
        if key in resource:
            out[key] = resource[key]
    return out


def generated_instance(
    master: dict[str, Any], occurrence: Occurrence, instance_id: str, calendar_id: str
) -> dict[str, Any]:
    """One generated (unmodified) instance of a series."""
    inst = {k: v for k, v in master.items() if k != "recurrence"}
    inst["id"] = instance_id
    inst["htmlLink"] = html_link(instance_id, calendar_id)
    inst["start"] = occurrence.start
    inst["end"] = occurrence.end
    inst["recurringEventId"] = master["id"]
    inst["originalStartTime"] = occurrence.original_start
    return ordered(inst)


def merge_patch(old: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """Google patch semantics: objects merge recursively, arrays and times replace, null removes."""
    out = dict(old)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif (
            isinstance(value, dict)
            and isinstance(out.get(key), dict)
            and key not in ("start", "end", "originalStartTime", "conferenceData")
        ):
            out[key] = merge_patch(out[key], value)
        else:
            out[key] = value
    return out


def normalize_when(when: Any, name: str, default_tz: str) -> dict[str, Any]:
    if not isinstance(when, dict) or not (when.get("dateTime") or when.get("date")):
        raise ApiError(400, "required", f"Missing {name} time.")
    if when.get("dateTime"):
        try:
            dt = datetime.fromisoformat(str(when["dateTime"]).replace("z", "Z"))
        except ValueError:
            raise bad_request(f"Invalid {name} time.") from None
        tz_name = when.get("timeZone")
        if dt.tzinfo is None and not tz_name:
            raise bad_request(f"Missing time zone definition for {name} time.")
        zone = get_zone(tz_name or default_tz)
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=zone)
        out = {"dateTime": format_datetime(dt.astimezone(zone) if tz_name else dt)}
        if tz_name:
            out["timeZone"] = tz_name
        return out
    try:
        day = datetime.strptime(str(when["date"]), "%Y-%m-%d").date()
    except ValueError:
        raise bad_request(f"Invalid {name} time.") from None
    return {"date": day.isoformat()}


def _match_q(resource: dict[str, Any], q: str) -> bool:
    hay = [resource.get(k, "") for k in ("summary", "description", "location")]
    org = resource.get("organizer", {})
    hay += [org.get("email", ""), org.get("displayName", "")]
    for a in resource.get("attendees", []):
        hay += [a.get("email", ""), a.get("displayName", "")]
    text = " ".join(h for h in hay if isinstance(h, str)).lower()
    return all(term in text for term in q.lower().split())


# ---------------------------------------------------------------- the store


class CalendarStore:
    def __init__(self, world: World) -> None:
        self.world = world
        self.calendars: dict[str, Calendar] = {}
        self.lists: dict[str, CalendarList] = {}  # by user id

    def _calendar_list(self, user_id: str) -> CalendarList:
        lst = self.lists.get(user_id)
        if lst is None:
            feed = ChangeFeed(CALENDAR_LIST_WATCH, user_id, self.world.codec, expired=_sync_gone)
            lst = self.lists[user_id] = CalendarList(feed)
        return lst

    # -- setup (used by seeding and tests) ------------------------------------------------------------

    def create_calendar(
        self,
        calendar_id: str,
        summary: str,
        time_zone: str,
        kind: str = "secondary",
        owner_id: str | None = None,
        description: str = "",
    ) -> Calendar:
        with self.world.lock:
            if calendar_id in self.calendars:
                raise ValueError(f"calendar exists: {calendar_id}")
            now = self.world.now()
            feed = ChangeFeed(EVENTS_WATCH, calendar_id, self.world.codec, expired=_sync_gone)
            cal = Calendar(
                calendar_id, summary, time_zone, feed, kind, description, owner_id, created=now, updated=now
            )
            self.calendars[calendar_id] = cal
            return cal

    def subscribe(
        self,
        user_id: str,
        calendar_id: str,
        access_role: str,
        primary: bool = False,
        color_id: str = "14",
        background_color: str = "#9fe1e7",
    ) -> CalendarListEntry:
        """Add a calendar to a user's calendar list (notifies calendarList channels)."""
        with self.world.lock:
            lst = self._calendar_list(user_id)
            entry = CalendarListEntry(
                calendar_id,
                access_role,
                primary,
                color_id=color_id,
                background_color=background_color,
                seq=lst.feed.advance(),
                updated=self.world.now(),
            )
            lst.entries[calendar_id] = entry
            self.world.channels.notify(CALENDAR_LIST_WATCH, user_id)
            return entry

    def unsubscribe(self, user_id: str, calendar_id: str) -> None:
        with self.world.lock:
            lst = self.lists.get(user_id)
            entry = lst.entries.get(calendar_id) if lst else None
            if lst is None or entry is None or entry.deleted:
                raise not_found()
            entry.deleted, entry.seq, entry.updated = True, lst.feed.advance(), self.world.now()
            self.world.channels.notify(CALENDAR_LIST_WATCH, user_id)

    def put_event(
        self,
        calendar_id: str,
        resource: dict[str, Any],
        overrides: dict[str, dict[str, Any]] | None = None,
        mirror: bool = True,
        notify: bool = True,
    ) -> StoredEvent:
        """Store a fully formed event resource directly (seeding, tests), replacing any previous one."""
        with self.world.lock:
            cal = self.calendars[calendar_id]
            now = self.world.now()
            seq = cal.bump(now)
            stored = StoredEvent(ordered(view_for(resource, cal.id, etag_for(seq, now))), seq)
            for instance_id, override in (overrides or {}).items():
                stored.overrides[instance_id] = Override(
                    ordered(view_for(override, cal.id, etag_for(seq, now))), seq
                )
            cal.events[stored.id] = stored
            if mirror:
                self._propagate(cal, stored, True, set(stored.overrides), notify=notify)
            if notify:
                self.world.channels.notify(EVENTS_WATCH, cal.id)
            return stored

    # -- access -------------------------------------------------------------------------------------

    def resolve(
        self, user: User, calendar_id: str, write: bool = False
    ) -> tuple[Calendar, CalendarListEntry]:
        if calendar_id == "primary":
            calendar_id = user.email  # the primary calendar's id is the user's address
        lst = self.lists.get(user.id)
        entry = lst.entries.get(calendar_id) if lst else None
        cal = self.calendars.get(calendar_id)
        if entry is None or entry.deleted or cal is None or cal.deleted:
            raise not_found()
        if write and ROLE_RANK[entry.access_role] < ROLE_RANK["writer"]:
            raise ApiError(403, "requiredAccessLevel", "You need to have writer access to this calendar.")
        return cal, entry

    def _check_write_scope(self, scopes: frozenset[str] | set[str] | None) -> None:
        if scopes is not None and not (set(scopes) & _WRITE_SCOPES):
            raise ApiError(403, "insufficientPermissions", "Request had insufficient authentication scopes.")

    # -- calendar list ----------------------------------------------------------------------------------

    def _entry_resource(self, entry: CalendarListEntry) -> dict[str, Any]:
        if entry.deleted:
            return {
                "kind": "calendar#calendarListEntry",
                "etag": etag_for(entry.seq, entry.updated),
                "id": entry.calendar_id,
                "deleted": True,
            }
        cal = self.calendars[entry.calendar_id]
        out: dict[str, Any] = {
            "kind": "calendar#calendarListEntry",
            "etag": etag_for(entry.seq, entry.updated),
            "id": cal.id,
            "summary": cal.summary,
        }
        if cal.description:
            out["description"] = cal.description
        out.update(
            timeZone=cal.time_zone,
            colorId=entry.color_id,
            backgroundColor=entry.background_color,
            foregroundColor=entry.foreground_color,
            selected=entry.selected,
            accessRole=entry.access_role,
            defaultReminders=[{"method": "popup", "minutes": 10}] if entry.primary else [],
        )
        if entry.hidden:
            out["hidden"] = True
        if entry.primary:
            out["notificationSettings"] = {
                "notifications": [
                    {"type": t, "method": "email"}
                    for t in ("eventCreation", "eventChange", "eventCancellation", "eventResponse")
                ]
            }
            out["primary"] = True
        out["conferenceProperties"] = {"allowedConferenceSolutionTypes": ["hangoutsMeet"]}
        return out

    def list_calendar_list(self, user: User, params: dict[str, Any]) -> dict[str, Any]:
        with self.world.lock:
            lst = self._calendar_list(user.id)
            feed = lst.feed
            codec = self.world.codec
            max_results = min(max(int(params.get("maxResults") or 100), 1), MAX_LIST_PAGE)
            since: int | None = None
            after: list[Any] | None = None
            snapshot = feed.seq
            min_role = params.get("minAccessRole")
            show_deleted = bool(params.get("showDeleted"))
            show_hidden = bool(params.get("showHidden"))
            if params.get("syncToken"):
                if min_role:
                    raise bad_request("minAccessRole cannot be combined with syncToken.")
                since = feed.position(params["syncToken"])
            if params.get("pageToken"):
                page_token = self._page_token(params["pageToken"], "calendar-list-page", user=user.id)
                since, after, snapshot = page_token["since"], page_token["after"], page_token["snapshot"]
                min_role = page_token.get("min_access_role")
                show_deleted = page_token.get("show_deleted", False)
                show_hidden = page_token.get("show_hidden", False)
            rows = []
            for entry in lst.entries.values():
                if entry.seq > snapshot:
                    continue
                if since is not None:
                    if entry.seq <= since:
                        continue
                else:
                    if entry.deleted and not show_deleted:
                        continue
                    if entry.hidden and not show_hidden:
                        continue
                    if min_role and ROLE_RANK[entry.access_role] < ROLE_RANK.get(min_role, 0):
                        continue
                key = [entry.seq, entry.calendar_id]
                if after is not None and key <= after:
                    continue
                rows.append((key, entry))
            rows.sort(key=lambda r: r[0])
            page, rest = rows[:max_results], rows[max_results:]
            out: dict[str, Any] = {
                "kind": "calendar#calendarList",
                "etag": etag_for(feed.seq, self.world.now()),
            }
            if rest:
                out["nextPageToken"] = codec.encode(
                    {
                        "kind": "calendar-list-page",
                        "user": user.id,
                        "since": since,
                        "after": page[-1][0],
                        "snapshot": snapshot,
                        "min_access_role": min_role,
                        "show_deleted": show_deleted,
                        "show_hidden": show_hidden,
                    }
                )
            else:
                out["nextSyncToken"] = feed.token(at=snapshot)
            out["items"] = [self._entry_resource(e) for _, e in page]
            return out

    def get_calendar_list_entry(self, user: User, calendar_id: str) -> dict[str, Any]:
        with self.world.lock:
            _, entry = self.resolve(user, calendar_id)
            return self._entry_resource(entry)

    # -- calendars ------------------------------------------------------------------------------------

    def calendar_resource(self, cal: Calendar) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": "calendar#calendar",
            "etag": etag_for(cal.seq, cal.updated),
            "id": cal.id,
            "summary": cal.summary,
        }
        if cal.description:
            out["description"] = cal.description
        out["timeZone"] = cal.time_zone
        out["conferenceProperties"] = {"allowedConferenceSolutionTypes": ["hangoutsMeet"]}
        return out

    def get_calendar(self, user: User, calendar_id: str) -> dict[str, Any]:
        with self.world.lock:
            cal, _ = self.resolve(user, calendar_id)
            return self.calendar_resource(cal)

    def insert_calendar(self, user: User, body: dict[str, Any]) -> dict[str, Any]:
        if not body.get("summary"):
            raise ApiError(400, "required", "Missing summary.")
        with self.world.lock:
            cal_id = f"c_{base32hex_id(length=40)}@group.calendar.google.com"
            cal = self.create_calendar(
                cal_id,
                str(body["summary"]),
                body.get("timeZone") or user.timezone,
                owner_id=user.id,
                description=body.get("description", ""),
            )
            self.subscribe(user.id, cal_id, "owner", color_id="9", background_color="#7bd148")
            return self.calendar_resource(cal)

    def delete_calendar(self, user: User, calendar_id: str) -> None:
        with self.world.lock:
            cal, entry = self.resolve(user, calendar_id)
            if cal.kind == "primary":
                raise bad_request("Cannot delete a primary calendar.", reason="cannotDeletePrimaryCalendar")
            if entry.access_role != "owner":
                raise ApiError(403, "forbidden", "Forbidden")
            cal.deleted = True
            for uid, lst in self.lists.items():
                if cal.id in lst.entries and not lst.entries[cal.id].deleted:
                    self.unsubscribe(uid, cal.id)

    # -- events: reads --------------------------------------------------------------------------------

    def _expansion(self, cal: Calendar, ev: StoredEvent) -> list[Occurrence]:
        key = (ev.seq, cal.time_zone)
        if ev._expansion_key != key:
            res = ev.resource
            try:
                ev._expansion = expand(
                    res["start"], res["end"], res.get("recurrence") or [], cal.time_zone, self.world.anchor
                )
            except (ValueError, KeyError, TypeError):
                ev._expansion = []
            ev._expansion_key = key
        return ev._expansion

    def _items(self, cal: Calendar, single_events: bool) -> list[_Item]:
        cached = cal._items_cache.get(single_events)
        if cached is not None and cached.seq == cal.seq:
            return cached.items
        items = self._build_items(cal, single_events)
        cal._items_cache[single_events] = ItemsCache(cal.seq, items)
        return items

    def _build_items(self, cal: Calendar, single_events: bool) -> list[_Item]:
        items: list[_Item] = []
        tz = cal.time_zone
        for ev in cal.events.values():
            res = ev.resource
            if not ev.recurring:
                items.append(
                    _Item(
                        ev.seq,
                        ev.id,
                        ev.cancelled,
                        res,
                        tombstone(res),
                        when_ts(res["start"], tz),
                        when_ts(res["end"], tz),
                    )
                )
                continue
            occurrences = self._expansion(cal, ev)
            if not single_events:
                start = occurrences[0].start_ts if occurrences else when_ts(res["start"], tz)
                end = occurrences[-1].end_ts if occurrences else when_ts(res["end"], tz)
                items.append(_Item(ev.seq, ev.id, ev.cancelled, res, tombstone(res), start, end))
                items.extend(
                    _override_item(ev, instance_id, override, tz, override.seq)
                    for instance_id, override in ev.overrides.items()
                )
                continue
            seen = set()
            for occurrence in occurrences:
                instance_id = f"{ev.id}_{occurrence.suffix}"
                seen.add(instance_id)
                override = ev.overrides.get(instance_id)
                if override is not None:
                    items.append(_override_item(ev, instance_id, override, tz, max(ev.seq, override.seq)))
                    continue
                tomb = {
                    "kind": "calendar#event",
                    "etag": res.get("etag"),
                    "id": instance_id,
                    "status": "cancelled",
                    "recurringEventId": ev.id,
                    "originalStartTime": occurrence.original_start,
                }
                cancelled = ev.cancelled or occurrence.excluded
                full = None if cancelled else generated_instance(res, occurrence, instance_id, cal.id)
                items.append(
                    _Item(
                        ev.seq,
                        instance_id,
                        cancelled,
                        full,
                        tomb,
                        occurrence.start_ts,
                        occurrence.end_ts,
                        True,
                    )
                )
            # Exceptions whose instance the current rule no longer generates.
            items.extend(
                _override_item(ev, instance_id, override, tz, max(ev.seq, override.seq))
                for instance_id, override in ev.overrides.items()
                if instance_id not in seen
            )
        return items

    def _events_envelope(self, cal: Calendar, entry: CalendarListEntry) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": "calendar#events",
            "etag": etag_for(cal.seq, cal.updated),
            "summary": cal.summary,
        }
        if cal.description:
            out["description"] = cal.description
        out.update(
            updated=rfc3339_millis(cal.updated),
            timeZone=cal.time_zone,
            accessRole=entry.access_role,
            defaultReminders=[{"method": "popup", "minutes": 10}] if entry.primary else [],
        )
        return out

    def list_events(self, user: User, calendar_id: str, params: dict[str, Any]) -> dict[str, Any]:
        """events.list. `params` holds already-typed query values (see calendar_api)."""
        codec = self.world.codec
        with self.world.lock:
            cal, entry = self.resolve(user, calendar_id)
            feed = cal.feed
            options = {
                "single_events": bool(params.get("singleEvents")),
                "show_deleted": bool(params.get("showDeleted")),
                "time_min": params.get("timeMin"),
                "time_max": params.get("timeMax"),
                "updated_min": params.get("updatedMin"),
                "q": params.get("q"),
                "ical_uid": params.get("iCalUID"),
                "order_by": params.get("orderBy"),
            }
            since: int | None = None  # the sync token's position: an incremental listing
            after: list[Any] | None = None  # the sort key of the previous page's last item
            snapshot = feed.seq  # changes after this are left for the next sync
            if params.get("syncToken"):
                for name, key in (
                    ("timeMin", "time_min"),
                    ("timeMax", "time_max"),
                    ("updatedMin", "updated_min"),
                    ("q", "q"),
                    ("iCalUID", "ical_uid"),
                    ("orderBy", "order_by"),
                ):
                    if options[key]:
                        raise bad_request(f"Invalid combination of parameters: syncToken and {name}.")
                since = feed.position(params["syncToken"])
            if params.get("pageToken"):
                page_token = self._page_token(params["pageToken"], "events-page", calendar=cal.id)
                if page_token["since"] is not None:
                    feed.require_epoch(page_token.get("epoch"))
                since, after = page_token["since"], page_token["after"]
                snapshot, options = page_token["snapshot"], page_token["options"]
            if options["order_by"] == "startTime" and not options["single_events"]:
                raise bad_request("The requested ordering is not available for the particular query.")
            if options["time_min"] and options["time_max"] and options["time_min"] >= options["time_max"]:
                raise bad_request("The specified time range is empty.", reason="timeRangeEmpty")
            max_results = min(max(int(params.get("maxResults") or 250), 1), MAX_EVENTS_PAGE)

            items = self._items(cal, options["single_events"])
            if since is not None:
                items = feed.changes_since(items, since, lambda i: i.seq, snapshot)
            rows = []
            for item in items:
                if item.seq > snapshot:
                    continue  # changed after this listing began: the next incremental sync returns it
                if since is None:
                    if item.cancelled:
                        # Google keeps cancelled exceptions in non-expanded lists even without showDeleted.
                        keep_instance = (
                            not options["single_events"] and item.instance and not item.series_cancelled
                        )
                        if not (options["show_deleted"] or options["updated_min"] or keep_instance):
                            continue
                    if options["time_min"] is not None and item.end_ts <= options["time_min"]:
                        continue
                    if options["time_max"] is not None and item.start_ts >= options["time_max"]:
                        continue
                    if options["updated_min"] is not None and item.updated_ts() < options["updated_min"]:
                        continue
                    if options["ical_uid"] and (item.resource or {}).get("iCalUID") != options["ical_uid"]:
                        continue
                    if options["q"] and (item.cancelled or not _match_q(item.resource or {}, options["q"])):
                        continue
                if options["order_by"] == "startTime":
                    key = [item.start_ts, item.id]
                elif options["order_by"] == "updated":
                    key = [item.updated_ts(), item.id]
                else:
                    key = [item.seq, item.id]
                if after is not None and key <= after:
                    continue
                rows.append((key, item))
            rows.sort(key=lambda r: r[0])
            page, rest = rows[:max_results], rows[max_results:]
            out = self._events_envelope(cal, entry)
            if rest:
                out["nextPageToken"] = codec.encode(
                    {
                        "kind": "events-page",
                        "calendar": cal.id,
                        "since": since,
                        "after": page[-1][0],
                        "snapshot": snapshot,
                        "options": options,
                        "epoch": feed.epoch,
                    }
                )
            else:
                out["nextSyncToken"] = feed.token(at=snapshot)
            out["items"] = [item.out() for _, item in page]
            return out

    def _page_token(self, token: str, kind: str, **scope: str) -> dict[str, Any]:
        """The state a page token of ``kind`` carries; 400 when it is not one (for ``scope``)."""
        page = self.world.codec.decode(token)
        if not page or page.get("kind") != kind or any(page.get(k) != v for k, v in scope.items()):
            raise bad_request("Invalid page token value.")
        return page

    def _locate(self, cal: Calendar, event_id: str) -> tuple[StoredEvent, str | None, Occurrence | None]:
        """(stored event, instance id or None, occurrence) for an event id or an instance id
        (`{series id}_{suffix}`)."""
        ev = cal.events.get(event_id)
        if ev is not None:
            return ev, None, None
        base, sep, suffix = event_id.rpartition("_")
        ev = cal.events.get(base) if sep else None
        if ev is None or not ev.recurring:
            raise not_found()
        occurrence = next((o for o in self._expansion(cal, ev) if o.suffix == suffix), None)
        if occurrence is None and event_id not in ev.overrides:
            raise not_found()
        return ev, event_id, occurrence

    def _instance_resource(
        self, cal: Calendar, ev: StoredEvent, instance_id: str, occurrence: Occurrence | None
    ) -> dict[str, Any]:
        override = ev.overrides.get(instance_id)
        if override is not None:
            res = override.resource
        else:
            assert occurrence is not None
            res = generated_instance(ev.resource, occurrence, instance_id, cal.id)
            if occurrence.excluded:
                res = {**res, "status": "cancelled"}
        if ev.cancelled:
            res = {**res, "status": "cancelled"}
        return res

    def get_event(self, user: User, calendar_id: str, event_id: str) -> dict[str, Any]:
        with self.world.lock:
            cal, _ = self.resolve(user, calendar_id)
            ev, instance_id, occurrence = self._locate(cal, event_id)
            return (
                ev.resource
                if instance_id is None
                else self._instance_resource(cal, ev, instance_id, occurrence)
            )

    def instances(
        self, user: User, calendar_id: str, event_id: str, params: dict[str, Any]
    ) -> dict[str, Any]:
        with self.world.lock:
            cal, entry = self.resolve(user, calendar_id)
            ev, instance_id, _ = self._locate(cal, event_id)
            if instance_id is not None or not ev.recurring:
                raise bad_request("The event is not a recurring event.", reason="notRecurringEvent")
            offset = 0
            if params.get("pageToken"):
                page_token = self._page_token(params["pageToken"], "instances-page")
                offset = page_token["offset"]
            rows = []
            for occurrence in self._expansion(cal, ev):
                res = self._instance_resource(cal, ev, f"{ev.id}_{occurrence.suffix}", occurrence)
                if res.get("status") == "cancelled":
                    if not params.get("showDeleted"):
                        continue
                    res = tombstone(res)
                if params.get("timeMin") is not None and occurrence.end_ts <= params["timeMin"]:
                    continue
                if params.get("timeMax") is not None and occurrence.start_ts >= params["timeMax"]:
                    continue
                rows.append(res)
            max_results = min(max(int(params.get("maxResults") or 250), 1), MAX_EVENTS_PAGE)
            out = self._events_envelope(cal, entry)
            page = rows[offset : offset + max_results]
            if offset + max_results < len(rows):
                out["nextPageToken"] = self.world.codec.encode(
                    {"kind": "instances-page", "offset": offset + max_results}
                )
            out["items"] = page
            return out

    def truth(self, user_id: str) -> dict[str, list[dict[str, Any]]]:
        """For each calendar of the user: what a full `events.list(singleEvents=True)` returns now."""
        with self.world.lock:
            lst = self.lists.get(user_id)
            out: dict[str, list[dict[str, Any]]] = {}
            if lst is None:
                return out
            for cal_id, entry in lst.entries.items():
                cal = self.calendars.get(cal_id)
                if entry.deleted or cal is None or cal.deleted:
                    continue
                items = sorted(
                    (i for i in self._items(cal, True) if not i.cancelled), key=lambda i: (i.seq, i.id)
                )
                out[cal_id] = [i.out() for i in items]
        return out

    def invalidate_sync_tokens(self, user_id: str) -> None:
        with self.world.lock:
            lst = self.lists.get(user_id)
            if lst is None:
                return
            lst.feed.invalidate()
            for cal_id in lst.entries:
                if cal_id in self.calendars:
                    self.calendars[cal_id].feed.invalidate()

    # -- events: writes --------------------------------------------------------------------------------

    def _organizer_for(self, cal: Calendar, user: User) -> dict[str, Any]:
        if cal.kind == "primary":
            return {"email": cal.id, "displayName": user.name if cal.id == user.email else cal.summary}
        return {"email": cal.id, "displayName": cal.summary}

    def _finish(
        self,
        cal: Calendar,
        fields: dict[str, Any],
        base: dict[str, Any],
        conference: ConferenceRequest,
        seq: int,
        now: float,
        old: dict[str, Any] | None,
    ) -> dict[str, Any]:
        """Validate and complete an event resource from its writable `fields` and read-only `base`.

        `conference` says what the request asked of the event's conference data.
        """
        res = dict(base)
        for key in _PASSTHROUGH:
            if key in fields:
                res[key] = fields[key]
        for key in [k for k, v in res.items() if v is None]:
            del res[key]
        tz = cal.time_zone
        res["start"] = normalize_when(res.get("start"), "start", tz)
        res["end"] = normalize_when(res.get("end"), "end", tz)
        if is_all_day(res["start"]) != is_all_day(res["end"]):
            raise bad_request("Start and end times must either both be date or both be dateTime.")
        start_v, end_v = parse_when(res["start"], tz), parse_when(res["end"], tz)
        if end_v <= start_v:  # type: ignore[operator]
            raise bad_request("The specified time range is empty.", reason="timeRangeEmpty")
        if res.get("status", "confirmed") not in ("confirmed", "tentative", "cancelled"):
            raise bad_request("Invalid value for: status")
        res.setdefault("status", "confirmed")
        if "recurrence" in res:
            if "recurringEventId" in res:
                res.pop("recurrence")
            elif not isinstance(res["recurrence"], list):
                raise bad_request("Invalid recurrence rule.")
            elif res["recurrence"]:
                if "dateTime" in res["start"] and "timeZone" not in res["start"]:
                    res["start"] = {**res["start"], "timeZone": tz}
                    res["end"] = {**res["end"], "timeZone": res["end"].get("timeZone", tz)}
                try:
                    expand(res["start"], res["end"], res["recurrence"], tz, self.world.anchor, limit=1)
                except (ValueError, TypeError, KeyError):
                    raise bad_request("Invalid recurrence rule.") from None
            else:
                res.pop("recurrence")
        if "attendees" in res:
            res["attendees"] = self._normalize_attendees(res["attendees"], res["organizer"]["email"])
        self._apply_conference(res, conference, old)
        res.setdefault("reminders", {"useDefault": True})
        res.setdefault("eventType", "default")
        res["updated"] = rfc3339_millis(now)
        res.setdefault("sequence", 0)
        if old is not None and any(old.get(k) != res.get(k) for k in ("start", "end", "recurrence")):
            res["sequence"] = int(old.get("sequence", 0)) + 1
        return ordered(view_for(res, cal.id, etag_for(seq, now)))

    def _normalize_attendees(self, attendees: Any, organizer_email: str) -> list[dict[str, Any]]:
        if not isinstance(attendees, list):
            raise bad_request("Invalid attendees.")
        out = []
        for a in attendees:
            if not isinstance(a, dict) or not a.get("email"):
                raise ApiError(400, "required", "Missing attendee email.")
            a = dict(a)
            a["email"] = str(a["email"]).strip().lower()
            known = self.world.user_by_email(a["email"])
            if known is not None and "displayName" not in a:
                a["displayName"] = known.name
            if a["email"] == organizer_email:
                a["organizer"] = True
                a.setdefault("responseStatus", "accepted")
            else:
                a.pop("organizer", None)
            a.setdefault("responseStatus", "needsAction")
            if not a.get("optional"):
                a.pop("optional", None)
            out.append(a)
        return out

    def _apply_conference(
        self, res: dict[str, Any], conference: ConferenceRequest, old: dict[str, Any] | None
    ) -> None:
        """Conference data follows the request only with conferenceDataVersion=1 (Google ignores it
        otherwise); a patch that does not mention it keeps the old data, an update drops it."""
        version, requested, patch = conference
        res.pop("conferenceData", None)
        res.pop("hangoutLink", None)
        old = old or {}
        if version < 1 or (patch and requested is _MISSING):
            res.update({k: old[k] for k in ("conferenceData", "hangoutLink") if k in old})
            return
        if not requested or requested is _MISSING:
            return
        create = requested.get("createRequest")
        if create:
            if (create.get("conferenceSolutionKey") or {}).get("type") != "hangoutsMeet":
                raise bad_request("Invalid conference type value.")
            prior = old.get("conferenceData") or {}
            if prior.get("createRequest", {}).get("requestId") == create.get("requestId"):
                # The same createRequest again is a no-op, as at Google.
                res.update({k: old[k] for k in ("conferenceData", "hangoutLink") if k in old})
                return
            code = meet_code()
            res["conferenceData"] = meet_conference(code, create.get("requestId"))
            res["hangoutLink"] = f"https://meet.google.com/{code}"
            return
        res["conferenceData"] = requested
        if (requested.get("conferenceSolution") or {}).get("key", {}).get("type") == "hangoutsMeet":
            entries = requested.get("entryPoints", [])
            video = next((e for e in entries if e.get("entryPointType") == "video"), None)
            if video and video.get("uri"):
                res["hangoutLink"] = video["uri"]

    def insert_event(
        self,
        user: User,
        calendar_id: str,
        body: dict[str, Any],
        conference_version: int = 0,
        scopes: frozenset[str] | None = None,
    ) -> dict[str, Any]:
        self._check_write_scope(scopes)
        with self.world.lock:
            cal, _ = self.resolve(user, calendar_id, write=True)
            event_id = body.get("id")
            if event_id is not None:
                if not isinstance(event_id, str) or not is_valid_event_id(event_id):
                    raise bad_request("Invalid resource id value.")
                if event_id in cal.events:
                    raise ApiError(409, "duplicate", "The requested identifier already exists.")
            else:
                event_id = base32hex_id()
            now = self.world.now()
            seq = cal.seq + 1
            base = {
                "kind": "calendar#event",
                "id": event_id,
                "created": rfc3339_millis(now),
                "creator": {"email": user.email, "displayName": user.name},
                "organizer": self._organizer_for(cal, user),
                "iCalUID": body.get("iCalUID") or f"{event_id}@google.com",
            }
            fields = {k: v for k, v in body.items() if k not in _READ_ONLY}
            conference = ConferenceRequest(conference_version, body.get("conferenceData", _MISSING), False)
            res = self._finish(cal, fields, base, conference, seq, now, None)
            cal.bump(now)
            stored = StoredEvent(res, seq)
            cal.events[event_id] = stored
            self._propagate(cal, stored, True, set())
            self.world.channels.notify(EVENTS_WATCH, cal.id)
            return res

    def update_event(
        self,
        user: User,
        calendar_id: str,
        event_id: str,
        body: dict[str, Any],
        patch: bool,
        conference_version: int = 0,
        scopes: frozenset[str] | None = None,
    ) -> dict[str, Any]:
        """events.patch (`patch=True`) and events.update, on an event, a series or one instance."""
        self._check_write_scope(scopes)
        with self.world.lock:
            cal, _ = self.resolve(user, calendar_id, write=True)
            ev, instance_id, occurrence = self._locate(cal, event_id)
            old = (
                ev.resource
                if instance_id is None
                else self._instance_resource(cal, ev, instance_id, occurrence)
            )
            body = {k: v for k, v in body.items() if k not in _READ_ONLY}
            if instance_id is not None:
                body.pop("recurrence", None)  # an instance cannot carry its own rule
            # A patch merges into the current event; an update replaces every writable field.
            if patch:
                fields = merge_patch({k: v for k, v in old.items() if k not in _READ_ONLY}, body)
            else:
                fields = {"status": old.get("status", "confirmed"), **body}
            base = {k: old[k] for k in _READ_ONLY if k in old}
            conference = ConferenceRequest(conference_version, body.get("conferenceData", _MISSING), patch)
            now = self.world.now()
            seq = cal.seq + 1
            res = self._finish(cal, fields, base, conference, seq, now, old)
            cal.bump(now)
            changed_instance_ids: set[str] = set()
            if instance_id is None:
                old_suffixes = {o.suffix for o in self._expansion(cal, ev)} if ev.recurring else set()
                ev.resource, ev.seq = res, seq
                if old_suffixes or ev.recurring:
                    changed_instance_ids = self._orphan_overrides(cal, ev, seq, now)
            else:
                ev.overrides[instance_id] = Override(res, seq)
                changed_instance_ids = {instance_id}
            self._propagate(cal, ev, instance_id is None, changed_instance_ids)
            self.world.channels.notify(EVENTS_WATCH, cal.id)
            return res

    def _orphan_overrides(self, cal: Calendar, ev: StoredEvent, seq: int, now: float) -> set[str]:
        """After a series change, exceptions the new rule no longer generates become cancelled."""
        live = {f"{ev.id}_{o.suffix}" for o in self._expansion(cal, ev)} if ev.recurring else set()
        changed = set()
        for instance_id, override in ev.overrides.items():
            if instance_id not in live and override.resource.get("status") != "cancelled":
                res = {
                    **override.resource,
                    "status": "cancelled",
                    "updated": rfc3339_millis(now),
                    "etag": etag_for(seq, now),
                }
                ev.overrides[instance_id] = Override(res, seq)
                changed.add(instance_id)
        return changed

    def delete_event(
        self, user: User, calendar_id: str, event_id: str, scopes: frozenset[str] | None = None
    ) -> None:
        self._check_write_scope(scopes)
        with self.world.lock:
            cal, _ = self.resolve(user, calendar_id, write=True)
            ev, instance_id, occurrence = self._locate(cal, event_id)
            now = self.world.now()
            if instance_id is None:
                if ev.cancelled:
                    raise ApiError(410, "deleted", "Resource has been deleted")
                seq = cal.bump(now)
                ev.resource = {
                    **ev.resource,
                    "status": "cancelled",
                    "updated": rfc3339_millis(now),
                    "etag": etag_for(seq, now),
                }
                ev.seq = seq
                self._propagate(cal, ev, True, set())
            else:
                current = self._instance_resource(cal, ev, instance_id, occurrence)
                if current.get("status") == "cancelled":
                    raise ApiError(410, "deleted", "Resource has been deleted")
                seq = cal.bump(now)
                res = {
                    **current,
                    "status": "cancelled",
                    "updated": rfc3339_millis(now),
                    "etag": etag_for(seq, now),
                }
                ev.overrides[instance_id] = Override(res, seq)
                self._propagate(cal, ev, False, {instance_id})
            self.world.channels.notify(EVENTS_WATCH, cal.id)

    # -- attendee copies ---------------------------------------------------------------------------------

    def _propagate(
        self,
        cal: Calendar,
        ev: StoredEvent,
        master_changed: bool,
        changed_instance_ids: set[str],
        notify: bool = True,
    ) -> None:
        """Keep attendees' copies of an event in step with the organizer's calendar, as Google does."""
        organizer = ev.resource.get("organizer", {}).get("email")
        if organizer != cal.id:
            return
        targets = set()
        if not ev.cancelled:
            for a in ev.resource.get("attendees", []):
                email = a.get("email")
                target = self.calendars.get(email)
                if email != cal.id and target is not None and target.kind == "primary" and not target.deleted:
                    targets.add(email)
        now = self.world.now()
        for target_id in targets | ev.mirrors:
            target = self.calendars[target_id]
            seq = target.seq + 1
            etag = etag_for(seq, now)
            copy_ev = target.events.get(ev.id)
            if target_id not in targets:  # uninvited, or the event was cancelled: the copy is cancelled
                if copy_ev is None or copy_ev.cancelled:
                    continue
                cancelled = {"status": "cancelled", "updated": rfc3339_millis(now), "etag": etag}
                copy_ev.resource = {**copy_ev.resource, **cancelled}
                copy_ev.seq = seq
            elif copy_ev is None:
                copy_ev = StoredEvent(view_for(ev.resource, target_id, etag), seq)
                for instance_id, override in ev.overrides.items():
                    copy_ev.overrides[instance_id] = Override(
                        view_for(override.resource, target_id, etag), seq
                    )
                target.events[ev.id] = copy_ev
            else:
                refresh = master_changed or copy_ev.cancelled
                instance_ids = set(ev.overrides) if refresh else changed_instance_ids & set(ev.overrides)
                if not refresh and not instance_ids:
                    continue
                if refresh:
                    copy_ev.resource = view_for(ev.resource, target_id, etag)
                    copy_ev.seq = seq
                for instance_id in instance_ids:
                    copy_ev.overrides[instance_id] = Override(
                        view_for(ev.overrides[instance_id].resource, target_id, etag), seq
                    )
            target.bump(now)
            if notify:
                self.world.channels.notify(EVENTS_WATCH, target_id)
        ev.mirrors = targets

    # -- channels ----------------------------------------------------------------------------------------

    def events_watch_target(self, user: User, calendar_id: str) -> WatchTarget:
        """A calendar's events collection, as `events.watch` watches it."""
        with self.world.lock:
            cal, _ = self.resolve(user, calendar_id)
            uri = f"{self.world.base_url}/calendar/v3/calendars/{quote(cal.id, safe='')}/events?alt=json"
            return WatchTarget(EVENTS_WATCH, cal.id, stable_id(EVENTS_WATCH, cal.id), uri)

    def calendar_list_watch_target(self, user: User) -> WatchTarget:
        uri = f"{self.world.base_url}/calendar/v3/users/me/calendarList?alt=json"
        return WatchTarget(CALENDAR_LIST_WATCH, user.id, stable_id(CALENDAR_LIST_WATCH, user.id), uri)


def meet_conference(code: str, request_id: str | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {}
    if request_id is not None:
        data["createRequest"] = {
            "requestId": request_id,
            "conferenceSolutionKey": {"type": "hangoutsMeet"},
            "status": {"statusCode": "success"},
        }
    data["entryPoints"] = [
        {
            "entryPointType": "video",
            "uri": f"https://meet.google.com/{code}",
            "label": f"meet.google.com/{code}",
        },
        {
            "entryPointType": "more",
            "uri": f"https://tel.meet/{code}?pin=1234567890123",
            "pin": "1234567890123",
        },
    ]
    data["conferenceSolution"] = {
        "key": {"type": "hangoutsMeet"},
        "name": "Google Meet",
        "iconUri": MEET_ICON,
    }
    data["conferenceId"] = code
    return data


_MISSING = object()  # "the request did not mention this field", as opposed to null


class ConferenceRequest(NamedTuple):
    version: int  # the request's conferenceDataVersion (Google ignores conferenceData below 1)
    requested: Any  # the request's conferenceData, or _MISSING
    patch: bool  # events.patch (merge) rather than events.update (replace)


def _sync_gone() -> ApiError:
    return ApiError(
        410, "fullSyncRequired", "Sync token is no longer valid, a full sync is required.", domain="calendar"
    )

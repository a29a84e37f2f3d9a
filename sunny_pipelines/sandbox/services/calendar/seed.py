"""Calendar seeding: teams, shared calendars and a mix of events for the seeded users.

Each user gets a primary calendar, a team calendar shared with up to four colleagues, and (for users in
Europe or the Americas) a read-only public-holidays calendar. Events are spread from 14 days ago to
30 days ahead: one-off meetings, all-day events, weekly series with one modified and one cancelled
instance, Meet / Zoom / Teams / Webex links in the places real invitations put them, internal and
external attendees. A meeting organised by one user also appears on the invited colleagues' calendars,
with the same event id, as at Google.
"""

from __future__ import annotations

import random
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from sunny_pipelines.sandbox.core.common import (
    base32hex_id,
    format_datetime,
    get_zone,
    meet_code,
    rfc3339_millis,
    stable_id,
)
from sunny_pipelines.sandbox.seed import FIRST_NAMES, LAST_NAMES
from sunny_pipelines.sandbox.services.calendar.recurrence import timed_occurrence
from sunny_pipelines.sandbox.services.calendar.store import generated_instance, meet_conference

if TYPE_CHECKING:
    from sunny_pipelines.sandbox.seed import SeedContext

TEAMS = [
    "Platform",
    "Growth",
    "Design",
    "Data",
    "Mobile",
    "Infrastructure",
    "Security",
    "Sales Engineering",
    "Customer Success",
    "Research",
]
PROJECTS = ["Atlas", "Beacon", "Cobalt", "Drift", "Ember", "Falcon", "Granite", "Harbor"]

TIMED_TITLES = [
    "Design review: {project}", "Roadmap sync", "Customer call: {company}", "Interview: {person}",
    "Quarterly business review", "Incident retro", "Hiring committee", "Budget review",
    "Demo rehearsal: {project}", "Vendor evaluation: {company}", "Onboarding session",
    "Architecture deep dive", "Pairing: {project}", "Coffee chat", "All hands prep", "Pricing discussion",
    "Launch readiness: {project}",
]  # fmt: skip
SOLO_TITLES = ["Focus time", "Dentist appointment", "Gym", "Lunch", "Prep: board deck", "Expense reports"]
EXTERNAL_TITLES = [
    "{company} <> Sunny: intro call", "{company} partnership sync", "Contract review with {company}",
    "Product demo for {company}", "{company} quarterly check-in", "Security questionnaire walkthrough",
]  # fmt: skip
ALL_DAY_TITLES = [
    "Out of office",
    "Team offsite",
    "Conference: KubeCon",
    "Release freeze",
    "Workshop day",
    "Conference: PyCon",
    "Vacation",
    "Training day",
]
SERIES_TITLES = ["1:1 {a} / {b}", "Weekly planning", "Team sync", "Product review", "Mentoring: {a} / {b}"]
COMPANIES = {"globex.example.net": "Globex", "initech.example.org": "Initech"}

_LINK_KINDS = ("meet", "zoom", "teams", "webex", "none")
_LINK_WEIGHTS = (30, 14, 10, 6, 40)


def pick_link(ctx: SeedContext) -> str:
    return ctx.rng.choices(_LINK_KINDS, _LINK_WEIGHTS)[0]


def seed_calendars(ctx: SeedContext, created: list[dict[str, Any]], events_per_user: int) -> None:
    """Team and holiday calendars, and each user's events (`created`: the users as listed)."""
    world = ctx.world
    holiday_cals = _holiday_calendars(ctx, {u["timezone"] for u in created})
    teams = [created[i : i + 5] for i in range(0, len(created), 5)]
    store = world.calendar
    for t, members in enumerate(teams):
        name = TEAMS[t % len(TEAMS)] + ("" if t < len(TEAMS) else f" {t // len(TEAMS) + 1}")
        cal_id = f"c_{stable_id('team', name, str(world.seed), length=32)}@group.calendar.google.com"
        store.create_calendar(
            cal_id, f"Team {name}", members[0]["timezone"], description=f"Shared calendar of the {name} team"
        )
        for m in members:
            store.subscribe(m["id"], cal_id, "writer", color_id="9", background_color="#7bd148")
            region = _region(m["timezone"])
            if region in holiday_cals:
                store.subscribe(
                    m["id"], holiday_cals[region], "reader", color_id="8", background_color="#16a765"
                )
        _team_events(ctx, cal_id, f"Team {name}", members, max(2, events_per_user // 10))

    for i, user in enumerate(created):
        team = teams[i // 5]
        colleagues = [m for m in team if m["id"] != user["id"]]
        _user_events(ctx, user, colleagues, events_per_user)


def _region(tz: str) -> str | None:
    if tz.startswith("Europe/"):
        return "uk"
    if tz.startswith("America/"):
        return "usa"
    return None


# ---------------------------------------------------------------- holidays


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> date:
    """n-th (1-based; -1 = last) weekday (Mon=0) of a month."""
    if n > 0:
        d = date(year, month, 1)
        d += timedelta(days=(weekday - d.weekday()) % 7)
        return d + timedelta(weeks=n - 1)
    d = date(year + (month == 12), month % 12 + 1, 1) - timedelta(days=1)
    return d - timedelta(days=(d.weekday() - weekday) % 7)


def _holidays(region: str, year: int) -> list[tuple[date, str]]:
    common = [
        (date(year, 1, 1), "New Year's Day"),
        (date(year, 10, 31), "Halloween"),
        (date(year, 12, 24), "Christmas Eve"),
        (date(year, 12, 25), "Christmas Day"),
        (date(year, 12, 31), "New Year's Eve"),
    ]
    if region == "usa":
        return common + [
            (_nth_weekday(year, 1, 0, 3), "Martin Luther King Jr. Day"),
            (_nth_weekday(year, 2, 0, 3), "Presidents' Day"),
            (_nth_weekday(year, 5, 0, -1), "Memorial Day"),
            (date(year, 6, 19), "Juneteenth"),
            (date(year, 7, 4), "Independence Day"),
            (_nth_weekday(year, 9, 0, 1), "Labor Day"),
            (_nth_weekday(year, 10, 0, 2), "Columbus Day"),
            (date(year, 11, 11), "Veterans Day"),
            (_nth_weekday(year, 11, 3, 4), "Thanksgiving Day"),
        ]
    return common + [
        (date(year, 3, 17), "St Patrick's Day"),
        (_nth_weekday(year, 5, 0, 1), "Early May Bank Holiday"),
        (_nth_weekday(year, 5, 0, -1), "Spring Bank Holiday"),
        (_nth_weekday(year, 8, 0, -1), "Summer Bank Holiday"),
        (date(year, 11, 5), "Guy Fawkes Day"),
        (_nth_weekday(year, 11, 6, 2), "Remembrance Sunday"),
        (date(year, 11, 30), "St Andrew's Day"),
        (date(year, 12, 26), "Boxing Day"),
    ]


def _holiday_calendars(ctx: SeedContext, zones: set[str]) -> dict[str, str]:
    regions = {r for r in (_region(z) for z in zones) if r}
    out = {}
    today = datetime.fromtimestamp(ctx.now).date()
    for region in sorted(regions):
        country = "United Kingdom" if region == "uk" else "United States"
        cal_id = f"en.{region}#holiday@group.v.calendar.google.com"
        summary = f"Holidays in {country}"
        ctx.world.calendar.create_calendar(
            cal_id,
            summary,
            "Europe/London" if region == "uk" else "America/New_York",
            kind="holidays",
            description=f"Holidays and Observances in {country}",
        )
        for year in (today.year - 1, today.year, today.year + 1):
            for day, name in _holidays(region, year):
                if not -30 <= (day - today).days <= 90:
                    continue
                event_id = f"{day:%Y%m%d}_{stable_id(cal_id, name, length=26)}"
                stamp = rfc3339_millis(ctx.now - 200 * 86400)
                resource = {
                    "kind": "calendar#event",
                    "id": event_id,
                    "status": "confirmed",
                    "created": stamp,
                    "updated": stamp,
                    "summary": name,
                    "description": "Public holiday"
                    if name not in ("Halloween", "Christmas Eve")
                    else "Observance",
                    "creator": {"email": cal_id, "displayName": summary},
                    "organizer": {"email": cal_id, "displayName": summary},
                    "start": {"date": day.isoformat()},
                    "end": {"date": (day + timedelta(days=1)).isoformat()},
                    "transparency": "transparent",
                    "visibility": "public",
                    "iCalUID": f"{event_id}@google.com",
                    "sequence": 0,
                    "eventType": "default",
                }
                ctx.world.calendar.put_event(cal_id, resource, mirror=False, notify=False)
        out[region] = cal_id
    return out


# ---------------------------------------------------------------- events


def _person(user: dict[str, Any]) -> dict[str, str]:
    return {"email": user["email"], "displayName": user["name"]}


def _attendee(email: str, name: str | None, status: str, organizer: bool = False) -> dict[str, Any]:
    a: dict[str, Any] = {"email": email}
    if name:
        a["displayName"] = name
    if organizer:
        a["organizer"] = True
    a["responseStatus"] = status
    return a


def _response(rng: random.Random) -> str:
    return rng.choices(["accepted", "tentative", "needsAction", "declined"], [60, 10, 20, 10])[0]


def _slot(ctx: SeedContext, tz: str, day_range: tuple[int, int] = (-14, 30)) -> datetime:
    rng = ctx.rng
    zone = get_zone(tz)
    day = ctx.today(tz) + timedelta(days=rng.randint(*day_range))
    if day.weekday() >= 5:  # meetings happen on weekdays
        day += timedelta(days=7 - day.weekday())
    return datetime.combine(day, time(rng.randint(8, 17), rng.choice((0, 0, 30))), tzinfo=zone)


def _add_link(ctx: SeedContext, res: dict[str, Any], kind: str, host: dict[str, Any]) -> None:
    rng = ctx.rng
    if kind == "meet":
        code = meet_code(rng)
        res["hangoutLink"] = f"https://meet.google.com/{code}"
        res["conferenceData"] = meet_conference(code)
    elif kind == "zoom":
        meeting = str(rng.randint(81_000_000_000, 89_999_999_999))
        pwd = base32hex_id(rng, 32)
        url = f"https://us02web.zoom.us/j/{meeting}?pwd={pwd}"
        where = rng.choice(["location", "description", "conference"])
        if where == "location":
            res["location"] = url
        elif where == "description":
            res["description"] = (
                f"{host['name']} is inviting you to a scheduled Zoom meeting.\n\nJoin Zoom Meeting\n{url}\n\n"
                f"Meeting ID: {meeting[:3]} {meeting[3:7]} {meeting[7:]}\n"
                f"Passcode: {rng.randint(100000, 999999)}"
            )
        else:
            res["conferenceData"] = {
                "entryPoints": [
                    {
                        "entryPointType": "video",
                        "uri": url,
                        "label": f"us02web.zoom.us/j/{meeting}",
                        "meetingCode": meeting,
                        "passcode": str(rng.randint(100000, 999999)),
                    }
                ],
                "conferenceSolution": {
                    "key": {"type": "addOn"},
                    "name": "Zoom Meeting",
                    "iconUri": "https://lh3.googleusercontent.com/zoom-icon",
                },
                "conferenceId": meeting,
                "notes": "Meeting host: " + host["email"],
            }
    elif kind == "teams":
        thread = base32hex_id(rng, 40)
        tid = stable_id("tenant", host["email"].split("@")[1], length=32)
        url = (
            f"https://teams.microsoft.com/l/meetup-join/19%3ameeting_{thread}%40thread.v2/0"
            f"?context=%7b%22Tid%22%3a%22{tid}%22%7d"
        )
        res["location"] = "Microsoft Teams Meeting"
        res["description"] = (
            "________________________________________________________________________________\n"
            "Microsoft Teams meeting\nJoin on your computer, mobile app or room device\n"
            f"Click here to join the meeting<{url}>\n"
            f"Meeting ID: {rng.randint(100, 999)} {rng.randint(100, 999)} {rng.randint(100, 999)} "
            f"{rng.randint(100, 999)}\nPasscode: {base32hex_id(rng, 6)}\n"
            "________________________________________________________________________________"
        )
    elif kind == "webex":
        url = f"https://company.webex.com/meet/{host['email'].split('@')[0].replace('.', '')}"
        if rng.random() < 0.5:
            res["location"] = url
        else:
            res["description"] = (
                f"Join the Webex meeting: {url}\nAccess code: {rng.randint(1000000, 9999999)}"
            )


def _base(
    ctx: SeedContext,
    cal_id: str,
    summary: str,
    start: dict[str, str],
    end: dict[str, str],
    organizer: dict[str, Any],
    creator: dict[str, Any],
) -> dict[str, Any]:
    event_id = base32hex_id(ctx.rng)
    created, updated = ctx.stamp(ctx.now)
    return {
        "kind": "calendar#event",
        "id": event_id,
        "status": "confirmed",
        "created": created,
        "updated": updated,
        "summary": summary,
        "creator": dict(creator),
        "organizer": dict(organizer),
        "start": start,
        "end": end,
        "iCalUID": f"{event_id}@google.com",
        "sequence": 0,
        "reminders": {"useDefault": True},
        "eventType": "default",
    }


def _title(ctx: SeedContext, template: str, company: str = "Globex") -> str:
    rng = ctx.rng
    return template.format(
        project=rng.choice(PROJECTS),
        company=company,
        person=f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}",
    )


def _timed(ctx: SeedContext, tz: str) -> tuple[dict[str, str], dict[str, str]]:
    start = _slot(ctx, tz)
    end = start + timedelta(minutes=ctx.rng.choice((15, 30, 30, 45, 60, 60, 90)))
    return (
        {"dateTime": format_datetime(start), "timeZone": tz},
        {"dateTime": format_datetime(end), "timeZone": tz},
    )


def _user_events(
    ctx: SeedContext, user: dict[str, Any], colleagues: list[dict[str, Any]], count: int
) -> None:
    rng = ctx.rng
    store = ctx.world.calendar
    cal_id, tz = user["email"], user["timezone"]
    me = _person(user)
    for k in range(count):
        if (k == 0 and count >= 4) or (k > 3 and rng.random() < 0.08):
            _series(ctx, cal_id, tz, me, colleagues)
            continue
        if (k == 1 and count >= 6) or (k > 3 and rng.random() < 0.1):
            first = _slot(ctx, tz).date()
            span = rng.choice((1, 1, 2, 3))
            res = _base(
                ctx,
                cal_id,
                rng.choice(ALL_DAY_TITLES),
                {"date": first.isoformat()},
                {"date": (first + timedelta(days=span)).isoformat()},
                me,
                me,
            )
            if rng.random() < 0.5:
                res["transparency"] = "transparent"
            store.put_event(cal_id, res, notify=False)
            continue
        start, end = _timed(ctx, tz)
        link = pick_link(ctx)
        if rng.random() < 0.22 or k == 2:  # an invitation from someone outside the company
            ext_email, ext_name = rng.choice(ctx.externals)
            host = {"email": ext_email, "displayName": ext_name}
            company = COMPANIES[ext_email.split("@")[1]]
            res = _base(
                ctx, cal_id, _title(ctx, rng.choice(EXTERNAL_TITLES), company), start, end, host, host
            )
            attendees = [
                _attendee(ext_email, ext_name, "accepted", organizer=True),
                _attendee(user["email"], user["name"], _response(rng)),
            ]
            if colleagues and rng.random() < 0.4:
                c = rng.choice(colleagues)
                attendees.append(_attendee(c["email"], c["name"], _response(rng)))
            res["attendees"] = attendees
            if link == "meet" and rng.random() < 0.5:
                link = rng.choice(("zoom", "teams", "webex"))
            _add_link(ctx, res, link, {"email": ext_email, "name": ext_name})
            # The organizer is outside the sandbox: each invited user's calendar holds its own copy.
            for a in attendees[1:]:
                store.put_event(a["email"], res, notify=False)
            continue
        if rng.random() < 0.18:
            res = _base(ctx, cal_id, rng.choice(SOLO_TITLES), start, end, me, me)
            if rng.random() < 0.3:
                res["location"] = rng.choice(["Home", "Main St Dental, 12 Main St", "Room 4.01"])
            store.put_event(cal_id, res, notify=False)
            continue
        res = _base(ctx, cal_id, _title(ctx, rng.choice(TIMED_TITLES)), start, end, me, me)
        attendees = [_attendee(user["email"], user["name"], "accepted", organizer=True)]
        for c in rng.sample(colleagues, k=min(len(colleagues), rng.randint(1, 3))):
            attendees.append(_attendee(c["email"], c["name"], _response(rng)))
        if rng.random() < 0.35 or len(attendees) == 1:
            for ext_email, ext_name in rng.sample(ctx.externals, k=rng.randint(1, 2)):
                attendees.append(_attendee(ext_email, ext_name, _response(rng)))
        if rng.random() < 0.15:
            attendees[-1]["optional"] = True
        res["attendees"] = attendees
        _add_link(ctx, res, link, {"email": user["email"], "name": user["name"]})
        if link == "none" and rng.random() < 0.5:
            res["location"] = rng.choice(["Room 2.14 (Ada)", "Cafeteria", "HQ - Boardroom"])
        store.put_event(cal_id, res, notify=False)


def _series(
    ctx: SeedContext,
    cal_id: str,
    tz: str,
    organizer: dict[str, Any],
    colleagues: list[dict[str, Any]],
    creator: dict[str, Any] | None = None,
    title: str | None = None,
    attendees: list[dict[str, Any]] | None = None,
) -> None:
    """A weekly series with one modified instance and one cancelled instance (override or EXDATE)."""
    rng = ctx.rng
    start = _slot(ctx, tz, (-21, -7))
    end = start + timedelta(minutes=rng.choice((25, 30, 45, 60)))
    byday = ["MO", "TU", "WE", "TH", "FR", "SA", "SU"][start.weekday()]
    until = (datetime.fromtimestamp(ctx.now) + timedelta(days=rng.randint(40, 90))).strftime("%Y%m%dT000000Z")
    rule = rng.choice(
        [
            f"RRULE:FREQ=WEEKLY;BYDAY={byday}",
            f"RRULE:FREQ=WEEKLY;BYDAY={byday};UNTIL={until}",
            f"RRULE:FREQ=WEEKLY;INTERVAL=2;BYDAY={byday};COUNT=10",
            f"RRULE:FREQ=WEEKLY;BYDAY={byday};COUNT=12",
        ]
    )
    start_when = {"dateTime": format_datetime(start), "timeZone": tz}
    end_when = {"dateTime": format_datetime(end), "timeZone": tz}
    if attendees is None:
        partner = rng.choice(colleagues) if colleagues else None
        if partner is None:
            ext_email, ext_name = rng.choice(ctx.externals)
            partner = {"email": ext_email, "name": ext_name}
        title = title or rng.choice(SERIES_TITLES).format(
            a=organizer["displayName"].split()[0], b=partner["name"].split()[0]
        )
        attendees = [
            _attendee(organizer["email"], organizer["displayName"], "accepted", organizer=True),
            _attendee(partner["email"], partner["name"], _response(rng)),
        ]
    res = _base(ctx, cal_id, title or "Weekly sync", start_when, end_when, organizer, creator or organizer)
    res["recurrence"] = [rule]
    res["attendees"] = attendees
    _add_link(
        ctx,
        res,
        rng.choice(("meet", "meet", "zoom", "none")),
        {"email": organizer["email"], "name": organizer["displayName"]},
    )
    # Every rule above yields an instance every `step` weeks from the start (BYDAY = the start's weekday).
    step = timedelta(weeks=2 if "INTERVAL=2" in rule else 1)
    occs = [timed_occurrence(start + n * step, end - start, tz, tz) for n in range(4)]
    overrides: dict[str, dict[str, Any]] = {}
    if len(occs) >= 4:
        moved, dropped = occs[2], occs[3]
        iid = f"{res['id']}_{moved.suffix}"
        inst = generated_instance(res, moved, iid, cal_id)
        shift = timedelta(hours=1)
        zone = get_zone(tz)
        new_start = datetime.fromisoformat(moved.start["dateTime"]).astimezone(zone) + shift
        new_end = datetime.fromisoformat(moved.end["dateTime"]).astimezone(zone) + shift
        inst["start"] = {"dateTime": format_datetime(new_start), "timeZone": tz}
        inst["end"] = {"dateTime": format_datetime(new_end), "timeZone": tz}
        inst["summary"] = f"{res['summary']} (moved)"
        inst["sequence"] = 1
        overrides[iid] = inst
        if rng.random() < 0.5:
            local = datetime.fromisoformat(dropped.start["dateTime"]).astimezone(zone)
            res["recurrence"] = [rule, f"EXDATE;TZID={tz}:{local:%Y%m%dT%H%M%S}"]
        else:
            did = f"{res['id']}_{dropped.suffix}"
            overrides[did] = {**generated_instance(res, dropped, did, cal_id), "status": "cancelled"}
    ctx.world.calendar.put_event(cal_id, res, overrides=overrides, notify=False)


def _team_events(
    ctx: SeedContext, cal_id: str, summary: str, members: list[dict[str, Any]], count: int
) -> None:
    rng = ctx.rng
    tz = members[0]["timezone"]
    org = {"email": cal_id, "displayName": summary}
    everyone = [_attendee(m["email"], m["name"], _response(rng)) for m in members]
    creator = _person(members[0])
    _series(ctx, cal_id, tz, org, [], creator=creator, title="Sprint planning", attendees=everyone)
    for k in range(1, count):
        author = _person(rng.choice(members))
        if k % 3 == 1:
            first = _slot(ctx, tz).date()
            res = _base(
                ctx,
                cal_id,
                rng.choice(["Release day", "Hack day", "Team offsite"]),
                {"date": first.isoformat()},
                {"date": (first + timedelta(days=1)).isoformat()},
                org,
                author,
            )
        else:
            start, end = _timed(ctx, tz)
            res = _base(
                ctx,
                cal_id,
                rng.choice(["Team lunch", "Retro", "On-call handoff", "Tech talk"]),
                start,
                end,
                org,
                author,
            )
            res["attendees"] = [dict(a) for a in everyone]
            _add_link(
                ctx,
                res,
                rng.choice(("meet", "none")),
                {"email": author["email"], "name": author["displayName"]},
            )
        ctx.world.calendar.put_event(cal_id, res, notify=False)

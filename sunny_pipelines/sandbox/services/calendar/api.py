"""Calendar v3 over HTTP (under `/calendar/v3/`): query parsing and routes onto `CalendarStore`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.responses import Response

from sunny_pipelines.sandbox.core.common import ApiError, bad_request, etag_for, not_found, parse_rfc3339
from sunny_pipelines.sandbox.core.http import Request, empty_response, json_response
from sunny_pipelines.sandbox.core.plugin import ApiRoute, route
from sunny_pipelines.sandbox.services.calendar.store import CALENDAR_SCOPES, CalendarStore

if TYPE_CHECKING:
    from sunny_pipelines.sandbox.world import World

PREFIX = "/calendar/v3"

_SETTINGS_DEFAULTS = {
    "locale": "en",
    "weekStart": "1",
    "format24HourTime": "false",
    "dateFieldOrder": "MDY",
    "defaultEventLength": "60",
    "hideWeekends": "false",
    "autoAddHangouts": "true",
}


def _bool(req: Request, name: str) -> bool:
    value = req.arg(name)
    if value is None:
        return False
    if value.lower() not in ("true", "false", "1", "0"):
        raise bad_request(f"Invalid boolean value: '{value}'.")
    return value.lower() in ("true", "1")


def _int(req: Request, name: str) -> int | None:
    value = req.arg(name)
    if value is None:
        return None
    try:
        number = int(value)
    except ValueError:
        raise bad_request(
            f"Invalid value '{value}'. Values must match the following regular expression: '-?\\d+'"
        ) from None
    if number < 1:
        raise bad_request(f"Invalid value '{value}' for {name}.")
    return number


def _time(req: Request, name: str) -> float | None:
    value = req.arg(name)
    if value is None:
        return None
    try:
        return parse_rfc3339(value).timestamp()
    except ValueError:
        raise ApiError(400, "badRequest", "Bad Request") from None


class CalendarApi:
    def __init__(self, world: World, store: CalendarStore) -> None:
        self.world = world
        self.store = store

    def routes(self) -> list[ApiRoute]:
        def r(method: str, path: str, handler: Any) -> ApiRoute:
            return route(method, PREFIX + path, handler, api="calendar", scopes=CALENDAR_SCOPES)

        return [
            r("GET", "/users/me/calendarList", self.calendar_list),
            r("POST", "/users/me/calendarList/watch", self.calendar_list_watch),
            r("GET", "/users/me/calendarList/{calendar_id}", self.calendar_list_get),
            r("DELETE", "/users/me/calendarList/{calendar_id}", self.calendar_list_delete),
            r("GET", "/users/me/settings", self.settings_list),
            r("GET", "/users/me/settings/{setting}", self.settings_get),
            r("POST", "/calendars", self.calendars_insert),
            r("GET", "/calendars/{calendar_id}", self.calendars_get),
            r("DELETE", "/calendars/{calendar_id}", self.calendars_delete),
            r("GET", "/calendars/{calendar_id}/events", self.events_list),
            r("POST", "/calendars/{calendar_id}/events", self.events_insert),
            r("POST", "/calendars/{calendar_id}/events/watch", self.events_watch),
            r("GET", "/calendars/{calendar_id}/events/{event_id}", self.events_get),
            r("PATCH", "/calendars/{calendar_id}/events/{event_id}", self.events_patch),
            r("PUT", "/calendars/{calendar_id}/events/{event_id}", self.events_update),
            r("DELETE", "/calendars/{calendar_id}/events/{event_id}", self.events_delete),
            r("GET", "/calendars/{calendar_id}/events/{event_id}/instances", self.events_instances),
            r("POST", "/channels/stop", self.channels_stop),
        ]

    # -- calendar list / calendars / settings ------------------------------------------------------------

    def calendar_list(self, req: Request) -> Response:
        params = {
            "maxResults": _int(req, "maxResults"),
            "pageToken": req.arg("pageToken"),
            "syncToken": req.arg("syncToken"),
            "minAccessRole": req.arg("minAccessRole"),
            "showDeleted": _bool(req, "showDeleted"),
            "showHidden": _bool(req, "showHidden"),
        }
        return json_response(self.store.list_calendar_list(req.me, params))

    def calendar_list_get(self, req: Request, calendar_id: str) -> Response:
        return json_response(self.store.get_calendar_list_entry(req.me, calendar_id))

    def calendar_list_delete(self, req: Request, calendar_id: str) -> Response:
        with self.world.lock:
            cal, entry = self.store.resolve(req.me, calendar_id)
            if entry.primary:
                raise bad_request("Cannot remove the primary calendar from the list.")
            self.store.unsubscribe(req.me.id, cal.id)
        return empty_response()

    def calendar_list_watch(self, req: Request) -> Response:
        target = self.store.calendar_list_watch_target(req.me)
        return json_response(self.world.channels.create(req.me.id, req.json(), target))

    def _settings(self, req: Request) -> dict[str, str]:
        return {"timezone": req.me.timezone, **_SETTINGS_DEFAULTS}

    def settings_list(self, req: Request) -> Response:
        now = self.world.created_at
        items = [
            {"kind": "calendar#setting", "etag": etag_for(i, now), "id": k, "value": v}
            for i, (k, v) in enumerate(self._settings(req).items())
        ]
        return json_response({"kind": "calendar#settings", "etag": etag_for(0, now), "items": items})

    def settings_get(self, req: Request, setting: str) -> Response:
        settings = self._settings(req)
        if setting not in settings:
            raise not_found()
        etag = etag_for(0, self.world.created_at)
        value = settings[setting]
        return json_response({"kind": "calendar#setting", "etag": etag, "id": setting, "value": value})

    def calendars_insert(self, req: Request) -> Response:
        return json_response(self.store.insert_calendar(req.me, req.json()))

    def calendars_get(self, req: Request, calendar_id: str) -> Response:
        return json_response(self.store.get_calendar(req.me, calendar_id))

    def calendars_delete(self, req: Request, calendar_id: str) -> Response:
        self.store.delete_calendar(req.me, calendar_id)
        return empty_response()

    # -- events ---------------------------------------------------------------------------------------------

    def events_list(self, req: Request, calendar_id: str) -> Response:
        params = {
            "maxResults": _int(req, "maxResults"),
            "pageToken": req.arg("pageToken"),
            "syncToken": req.arg("syncToken"),
            "singleEvents": _bool(req, "singleEvents"),
            "showDeleted": _bool(req, "showDeleted"),
            "timeMin": _time(req, "timeMin"),
            "timeMax": _time(req, "timeMax"),
            "updatedMin": _time(req, "updatedMin"),
            "q": req.arg("q"),
            "iCalUID": req.arg("iCalUID"),
            "orderBy": req.arg("orderBy"),
        }
        if params["orderBy"] not in (None, "startTime", "updated"):
            raise bad_request(f"Invalid value for: orderBy ({params['orderBy']})")
        return json_response(self.store.list_events(req.me, calendar_id, params))

    def events_get(self, req: Request, calendar_id: str, event_id: str) -> Response:
        return json_response(self.store.get_event(req.me, calendar_id, event_id))

    def events_insert(self, req: Request, calendar_id: str) -> Response:
        res = self.store.insert_event(
            req.me, calendar_id, req.json(), _int(req, "conferenceDataVersion") or 0, req.scopes
        )
        return json_response(res)

    def events_patch(self, req: Request, calendar_id: str, event_id: str) -> Response:
        res = self.store.update_event(
            req.me,
            calendar_id,
            event_id,
            req.json(),
            True,
            _int(req, "conferenceDataVersion") or 0,
            req.scopes,
        )
        return json_response(res)

    def events_update(self, req: Request, calendar_id: str, event_id: str) -> Response:
        res = self.store.update_event(
            req.me,
            calendar_id,
            event_id,
            req.json(),
            False,
            _int(req, "conferenceDataVersion") or 0,
            req.scopes,
        )
        return json_response(res)

    def events_delete(self, req: Request, calendar_id: str, event_id: str) -> Response:
        self.store.delete_event(req.me, calendar_id, event_id, req.scopes)
        return empty_response()

    def events_instances(self, req: Request, calendar_id: str, event_id: str) -> Response:
        params = {
            "maxResults": _int(req, "maxResults"),
            "pageToken": req.arg("pageToken"),
            "showDeleted": _bool(req, "showDeleted"),
            "timeMin": _time(req, "timeMin"),
            "timeMax": _time(req, "timeMax"),
        }
        return json_response(self.store.instances(req.me, calendar_id, event_id, params))

    def events_watch(self, req: Request, calendar_id: str) -> Response:
        target = self.store.events_watch_target(req.me, calendar_id)
        return json_response(self.world.channels.create(req.me.id, req.json(), target))

    def channels_stop(self, req: Request) -> Response:
        self.world.channels.stop(req.me.id, req.json())
        return empty_response()

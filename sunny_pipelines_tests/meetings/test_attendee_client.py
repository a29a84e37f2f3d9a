"""The product's Attendee client speaks Attendee's API as its OpenAPI document describes it:
every request it sends in a bot's life, and every answer it reads, is validated."""

from __future__ import annotations

from openapi_core.contrib.requests import RequestsOpenAPIRequest, RequestsOpenAPIResponse
from openapi_core.templating.responses.exceptions import ResponseNotFound

from sunny_pipelines.meetings.bots import refresh_bot
from sunny_pipelines_tests.sandbox.helpers import attendee_openapi

from .helpers import decide_for, put_meeting
from .test_runs import play_meeting, soon


def test_every_request_of_a_bots_life_conforms_to_attendees_openapi_document(
    google, database, attendee, sandbox, connected_users, monkeypatch
):
    openapi = attendee_openapi(sandbox.base_url)
    checked: list[str] = []

    def validate(response, *args, **kwargs):  # a requests response hook
        request = RequestsOpenAPIRequest(response.request)
        openapi.validate_request(request)
        try:
            openapi.validate_response(request, RequestsOpenAPIResponse(response))
        except ResponseNotFound:  # a status the document lists no schema for
            assert response.status_code >= 400
        checked.append(f"{response.request.method} {response.status_code}")

    make_client = attendee.client

    def validating_client():
        client = make_client()
        client._session.hooks["response"].append(validate)
        return client

    monkeypatch.setattr(type(attendee), "client", lambda self: validating_client())
    ada, alan, _ = connected_users
    put_meeting(sandbox, ada, [alan], start=soon())
    decide_for(google, database, attendee, [ada, alan])
    [ours] = [b for b in sandbox.world.attendee_bots() if "81234567890" in b["meeting_url"]]
    play_meeting(sandbox, ours["id"])
    refresh_bot(database, attendee.client(), ours["id"])
    assert {"GET 200", "POST 201"} <= set(checked)

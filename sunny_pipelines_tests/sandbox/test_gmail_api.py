"""Gmail v1 emulation and Pub/Sub push subscriptions, driven by the real google-api-python-client."""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

import google.auth.transport.requests
import pytest
import requests
from google.oauth2 import id_token
from googleapiclient.errors import HttpError
from googleapiclient.http import MediaInMemoryUpload

from sunny_pipelines.sandbox.__main__ import build_parser
from sunny_pipelines.sandbox.server import SandboxServer
from sunny_pipelines_tests.google_clients import google_client
from sunny_pipelines_tests.sandbox.helpers import Receiver

TOPIC = "projects/sunny-sandbox/topics/gmail"
AUDIENCE = "https://sunny.example.com/webhooks/google/gmail"


def _gmail(sandbox: SandboxServer, n: int = 0) -> tuple[Any, dict[str, Any]]:
    user = sandbox.world.list_users()[n]
    return google_client(sandbox, user, "gmail"), user


def _error(exc: HttpError) -> dict[str, Any]:
    return json.loads(exc.content)["error"]


def _raw(subject: str, sender: str, to: str, body: str = "Hello there", **headers: str) -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, to, subject
    msg["Date"] = format_datetime(datetime.now(UTC) - timedelta(days=2))
    msg["Message-ID"] = f"<{subject.replace(' ', '-').lower()}-{time.monotonic_ns()}@test.example.com>"
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content(body)
    return msg.as_bytes()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode()


def _list_all(service: Any, **kwargs: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    messages, pages = [], []
    request = service.users().messages().list(userId="me", **kwargs)
    while request is not None:
        page = request.execute()
        pages.append(page)
        messages += page.get("messages", [])
        request = service.users().messages().list_next(request, page)
    return messages, pages


def _history_all(
    service: Any, start: str, **kwargs: Any
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    records, pages = [], []
    request = service.users().history().list(userId="me", startHistoryId=start, **kwargs)
    while request is not None:
        page = request.execute()
        pages.append(page)
        records += page.get("history", [])
        request = service.users().history().list_next(request, page)
    return records, pages


def _walk(part: dict[str, Any]) -> list[dict[str, Any]]:
    return [part] + [p for child in part.get("parts", []) for p in _walk(child)]


def _header(part: dict[str, Any], name: str) -> str | None:
    return next((h["value"] for h in part.get("headers", []) if h["name"].lower() == name.lower()), None)


def _text(part: dict[str, Any]) -> str:
    data = part.get("body", {}).get("data")
    return base64.urlsafe_b64decode(data).decode("utf-8", "replace") if data else ""


def test_list_pages_newest_first_and_truth(sandbox: SandboxServer) -> None:
    service, user = _gmail(sandbox)
    truth = sandbox.world.truth("gmail", user["email"])
    messages, pages = _list_all(service, maxResults=4)
    assert (
        len(pages) > 1 and all("nextPageToken" in p for p in pages[:-1]) and "nextPageToken" not in pages[-1]
    )
    visible = [m for m in truth["messages"] if not {"SPAM", "TRASH"} & set(m["labelIds"])]
    assert [m["id"] for m in messages] == [m["id"] for m in visible]
    assert pages[0]["resultSizeEstimate"] == len(visible)
    # Everything (spam and trash too) is what the truth endpoint says, in the same order.
    everything, _ = _list_all(service, maxResults=7, includeSpamTrash=True)
    assert [(m["id"], m["threadId"]) for m in everything] == [
        (m["id"], m["threadId"]) for m in truth["messages"]
    ]
    dates = [int(m["internalDate"]) for m in truth["messages"]]
    assert dates == sorted(dates, reverse=True)
    over_http = requests.get(
        f"{sandbox.base_url}/sandbox/gmail/truth", params={"email": user["email"]}, timeout=5
    ).json()
    assert over_http == truth
    profile = service.users().getProfile(userId="me").execute()
    assert profile["emailAddress"] == user["email"] and profile["historyId"] == truth["historyId"]
    assert profile["messagesTotal"] == len(truth["messages"])
    assert profile["threadsTotal"] == len({m["threadId"] for m in truth["messages"]})
    # userId may be the address; another user's address is refused.
    assert service.users().getProfile(userId=user["email"]).execute() == profile
    with pytest.raises(HttpError) as exc:
        service.users().getProfile(userId=sandbox.world.list_users()[1]["email"]).execute()
    assert exc.value.resp.status == 403


def test_queries_and_labels(sandbox: SandboxServer) -> None:
    service, user = _gmail(sandbox)
    truth = sandbox.world.truth("gmail", user["email"])["messages"]
    now_ms = sandbox.world.now() * 1000

    def ids(**kwargs: Any) -> list[str]:
        return [m["id"] for m in _list_all(service, maxResults=500, **kwargs)[0]]

    live = [m for m in truth if not {"SPAM", "TRASH"} & set(m["labelIds"])]
    week = [m["id"] for m in live if int(m["internalDate"]) > now_ms - 7 * 86400_000]
    assert ids(q="newer_than:7d") == week
    after = int(now_ms / 1000) - 10 * 86400
    assert ids(q=f"after:{after}") == [m["id"] for m in live if int(m["internalDate"]) >= after * 1000]
    inbox = [m["id"] for m in live if "INBOX" in m["labelIds"]]
    assert ids(q="in:inbox") == inbox == ids(labelIds=["INBOX"])
    assert ids(q="in:inbox newer_than:7d") == [i for i in inbox if i in week]
    assert ids(labelIds=["INBOX", "UNREAD"]) == [
        m["id"] for m in live if {"INBOX", "UNREAD"} <= set(m["labelIds"])
    ]
    assert ids(q="label:unread") == [m["id"] for m in live if "UNREAD" in m["labelIds"]]
    assert ids(q="-in:inbox") == [m["id"] for m in live if "INBOX" not in m["labelIds"]]
    assert ids(q="in:anywhere") == [m["id"] for m in truth]
    labels = {label["id"]: label for label in service.users().labels().list(userId="me").execute()["labels"]}
    assert {"INBOX", "SENT", "TRASH", "SPAM", "UNREAD", "STARRED", "IMPORTANT", "CATEGORY_UPDATES"} <= set(
        labels
    )
    user_labels = [label for label in labels.values() if label["type"] == "user"]
    assert user_labels and all(label["id"].startswith("Label_") for label in user_labels)
    receipts = next(label for label in user_labels if label["name"] == "Receipts")
    assert ids(q="label:receipts") == [m["id"] for m in live if receipts["id"] in m["labelIds"]]
    with pytest.raises(HttpError) as exc:
        service.users().messages().list(userId="me", labelIds=["NOPE"]).execute()
    assert exc.value.resp.status == 400


def test_get_in_each_format(sandbox: SandboxServer) -> None:
    service, user = _gmail(sandbox)
    truth = sandbox.world.truth("gmail", user["email"])["messages"]
    invite = next(m for m in truth if m["subject"].startswith("Invitation:"))
    msgs = service.users().messages()
    full = msgs.get(userId="me", id=invite["id"]).execute()
    common = {"id", "threadId", "labelIds", "snippet", "historyId", "internalDate", "sizeEstimate"}
    assert common <= set(full) and full["internalDate"] == invite["internalDate"]
    assert full["snippet"] == invite["snippet"] and full["labelIds"] == invite["labelIds"]
    payload = full["payload"]
    assert payload["partId"] == "" and payload["mimeType"].startswith("multipart/")
    assert _header(payload, "Subject") == invite["subject"]
    parts = _walk(payload)
    calendar = next(p for p in parts if p["mimeType"] == "text/calendar")
    ics = _text(calendar)
    assert "METHOD:REQUEST" in ics and "BEGIN:VEVENT" in ics and "UID:" in ics
    assert calendar["body"]["size"] == len(base64.urlsafe_b64decode(calendar["body"]["data"]))
    plain = next(p for p in parts if p["mimeType"] == "text/plain")
    assert "invited you" in _text(plain)
    attachments = [p for p in parts if p.get("filename")]
    for att in attachments:
        got = (
            msgs.attachments()
            .get(userId="me", messageId=invite["id"], id=att["body"]["attachmentId"])
            .execute()
        )
        assert base64.urlsafe_b64decode(got["data"]).decode().startswith("BEGIN:VCALENDAR")

    meta = msgs.get(
        userId="me", id=invite["id"], format="metadata", metadataHeaders=["Subject", "From"]
    ).execute()
    assert {h["name"] for h in meta["payload"]["headers"]} == {"Subject", "From"}
    assert "parts" not in meta["payload"] and common <= set(meta)
    minimal = msgs.get(userId="me", id=invite["id"], format="minimal").execute()
    assert "payload" not in minimal and "raw" not in minimal and common <= set(minimal)
    raw = msgs.get(userId="me", id=invite["id"], format="raw").execute()
    rfc822 = base64.urlsafe_b64decode(raw["raw"])
    assert b"Content-Type: text/calendar" in rfc822 and raw["sizeEstimate"] == len(rfc822)
    with pytest.raises(HttpError) as exc:
        msgs.get(userId="me", id="0000000000000000").execute()
    assert exc.value.resp.status == 404
    assert _error(exc.value)["message"] == "Requested entity was not found."
    assert _error(exc.value)["errors"][0]["reason"] == "notFound"


def test_changes_show_in_history_across_pages(sandbox: SandboxServer) -> None:
    service, user = _gmail(sandbox)
    msgs = service.users().messages()
    start = service.users().getProfile(userId="me").execute()["historyId"]
    # An unchanged mailbox: one call, no history, the same id.
    records, pages = _history_all(service, start)
    assert len(pages) == 1 and records == [] and pages[0]["historyId"] == start and "history" not in pages[0]

    first = _raw("Project kickoff", "Pat Doe <pat@globex.example.net>", user["email"], "Kickoff notes inside")
    inserted = msgs.insert(userId="me", body={"raw": _b64(first), "labelIds": ["INBOX", "UNREAD"]}).execute()
    assert inserted["labelIds"] == ["INBOX", "UNREAD"]
    original_id = [line for line in first.decode().splitlines() if line.startswith("Message-ID")][0].split(
        ": "
    )[1]
    reply = _raw(
        "Re: Project kickoff",
        user["email"],
        "pat@globex.example.net",
        "Thanks!",
        In_Reply_To=original_id,
        References=original_id,
    )
    imported = msgs.import_(userId="me", body={"raw": _b64(reply), "labelIds": ["SENT"]}).execute()
    assert imported["threadId"] == inserted["threadId"] and imported["id"] != inserted["id"]
    got = msgs.get(userId="me", id=imported["id"], format="minimal").execute()
    # import takes the Date header (two days ago); insert takes the time it arrived.
    assert int(got["internalDate"]) < sandbox.world.now() * 1000 - 86400_000
    assert got["snippet"] == "Thanks!"

    msgs.modify(
        userId="me", id=inserted["id"], body={"addLabelIds": ["STARRED"], "removeLabelIds": ["UNREAD"]}
    ).execute()
    trashed = msgs.trash(userId="me", id=inserted["id"]).execute()
    assert "TRASH" in trashed["labelIds"]
    untrashed = msgs.untrash(userId="me", id=inserted["id"]).execute()
    assert "TRASH" not in untrashed["labelIds"]
    msgs.delete(userId="me", id=imported["id"]).execute()
    with pytest.raises(HttpError) as exc:
        msgs.get(userId="me", id=imported["id"]).execute()
    assert exc.value.resp.status == 404

    records, pages = _history_all(service, start, maxResults=2)
    assert len(pages) == 3 and all("nextPageToken" in p for p in pages[:-1])
    ids = [int(r["id"]) for r in records]
    assert ids == sorted(ids) and len(set(ids)) == len(ids) and ids[0] > int(start)
    kinds = [
        [k for k in ("messagesAdded", "messagesDeleted", "labelsAdded", "labelsRemoved") if k in r]
        for r in records
    ]
    assert kinds == [
        ["messagesAdded"],
        ["messagesAdded"],
        ["labelsAdded", "labelsRemoved"],
        ["labelsAdded"],
        ["labelsRemoved"],
        ["messagesDeleted"],
    ]
    assert records[0]["messagesAdded"][0]["message"] == {
        "id": inserted["id"],
        "threadId": inserted["threadId"],
        "labelIds": ["INBOX", "UNREAD"],
    }
    assert records[2]["labelsAdded"][0]["labelIds"] == ["STARRED"]
    assert records[2]["labelsRemoved"][0]["labelIds"] == ["UNREAD"]
    assert records[3]["labelsAdded"][0]["labelIds"] == ["TRASH"]
    assert records[5]["messagesDeleted"][0]["message"]["id"] == imported["id"]
    assert all(r["messages"][0]["id"] in (inserted["id"], imported["id"]) for r in records)
    profile = service.users().getProfile(userId="me").execute()
    assert pages[-1]["historyId"] == profile["historyId"] == str(ids[-1])
    # historyTypes filters records; labelId keeps the records that touch that label.
    added, _ = _history_all(service, start, historyTypes=["messageAdded"])
    assert [r["id"] for r in added] == [records[0]["id"], records[1]["id"]]
    assert all(set(r) == {"id", "messages", "messagesAdded"} for r in added)
    starred, _ = _history_all(service, start, labelId="STARRED")
    assert [r["id"] for r in starred] == [records[2]["id"], records[3]["id"], records[4]["id"]]
    # From the newest id: nothing.
    assert _history_all(service, profile["historyId"])[0] == []


def test_media_uploads(sandbox: SandboxServer) -> None:
    service, user = _gmail(sandbox)
    msgs = service.users().messages()
    base = sandbox.base_url

    def upload(path: str, **kwargs: Any) -> requests.Response:
        return requests.post(
            f"{base}/upload/gmail/v1/users/me/messages{path}",
            headers={"Authorization": f"Bearer {user['access_token']}", **kwargs.pop("headers", {})},
            timeout=5,
            **kwargs,
        )

    raw = _raw("Uploaded", "Quinn <quinn@initech.example.org>", user["email"], "Sent as media")
    media = upload("", params={"uploadType": "media"}, data=raw, headers={"Content-Type": "message/rfc822"})
    assert media.status_code == 200, media.text
    assert msgs.get(userId="me", id=media.json()["id"], format="raw").execute()["raw"] == _b64(raw)

    boundary = "===============sandbox=="
    body = (
        (
            f"--{boundary}\r\nContent-Type: application/json\r\n\r\n"
            + json.dumps({"labelIds": ["INBOX"]})
            + f"\r\n--{boundary}\r\nContent-Type: message/rfc822\r\n\r\n"
        ).encode()
        + raw
        + f"\r\n--{boundary}--".encode()
    )
    multi = upload(
        "/import",
        params={"uploadType": "multipart"},
        data=body,
        headers={"Content-Type": f'multipart/related; boundary="{boundary}"'},
    )
    assert multi.status_code == 200, multi.text
    assert multi.json()["labelIds"] == ["INBOX"]
    assert msgs.get(userId="me", id=multi.json()["id"], format="raw").execute()["raw"] == _b64(raw)

    # The real client sends a media body to /upload/gmail/v1/... on the sandbox's host and port, but
    # keeps the https scheme of Google's root URL (api_endpoint only moves the netloc of media URLs):
    # against the plain-http sandbox the request URI must be switched to http.
    gmail = google_client(sandbox.base_url, user, "gmail")
    request = (
        gmail.users()
        .messages()
        .insert(
            userId="me",
            body={"labelIds": ["INBOX"]},
            media_body=MediaInMemoryUpload(raw, mimetype="message/rfc822"),
        )
    )
    assert request.uri.startswith(base.replace("http://", "https://") + "/upload/gmail/v1/users/me/messages?")
    assert "uploadType=multipart" in request.uri
    request.uri = request.uri.replace("https://", "http://", 1)
    inserted = request.execute()
    assert inserted["labelIds"] == ["INBOX"]
    # Resumable uploads answer 308 (resume incomplete): like googleapiclient's own build_http(),
    # tell httplib2 that 308 is no redirect.
    gmail._http.http.redirect_codes = gmail._http.http.redirect_codes - {308}
    resumable = (
        gmail.users()
        .messages()
        .import_(
            userId="me",
            media_body=MediaInMemoryUpload(raw, mimetype="message/rfc822", chunksize=256, resumable=True),
        )
    )
    assert "uploadType=resumable" in resumable.uri
    resumable.uri = resumable.uri.replace("https://", "http://", 1)
    status, imported = None, None
    while imported is None:
        status, imported = resumable.next_chunk()
    assert msgs.get(userId="me", id=imported["id"], format="raw").execute()["raw"] == _b64(raw)
    assert imported["threadId"] != inserted["threadId"]  # no references: a thread of its own
    del status


def test_expire_history_answers_404(sandbox: SandboxServer) -> None:
    service, user = _gmail(sandbox)
    old = service.users().getProfile(userId="me").execute()["historyId"]
    service.users().messages().insert(
        userId="me",
        body={"raw": _b64(_raw("One", "a@globex.example.net", user["email"])), "labelIds": ["INBOX"]},
    ).execute()
    assert len(_history_all(service, old)[0]) == 1
    sandbox.world.inject_fault("expire_history", user_email=user["email"])
    with pytest.raises(HttpError) as exc:
        service.users().history().list(userId="me", startHistoryId=old).execute()
    assert exc.value.resp.status == 404
    assert _error(exc.value)["errors"][0]["reason"] == "notFound"
    assert _error(exc.value)["message"] == "Requested entity was not found."
    fresh = service.users().getProfile(userId="me").execute()["historyId"]
    assert _history_all(service, fresh)[0] == []
    service.users().messages().insert(
        userId="me",
        body={"raw": _b64(_raw("Two", "a@globex.example.net", user["email"])), "labelIds": ["INBOX"]},
    ).execute()
    records, pages = _history_all(service, fresh)
    assert len(records) == 1 and int(pages[-1]["historyId"]) > int(fresh)
    # Another user's history is untouched; ids in the future answer 404 too.
    other, _ = _gmail(sandbox, 1)
    other_id = other.users().getProfile(userId="me").execute()["historyId"]
    assert (
        other.users().history().list(userId="me", startHistoryId=other_id).execute()["historyId"] == other_id
    )
    with pytest.raises(HttpError) as exc:
        service.users().history().list(
            userId="me", startHistoryId=str(int(pages[-1]["historyId"]) + 5)
        ).execute()
    assert exc.value.resp.status == 404


def test_watch_pushes_signed_pubsub_messages(sandbox: SandboxServer, receiver: Receiver) -> None:
    service, user = _gmail(sandbox)
    sub = sandbox.world.create_push_subscription(TOPIC, receiver.url, AUDIENCE)
    assert sub["audience"] == AUDIENCE and sub["name"].startswith("projects/sunny-sandbox/subscriptions/")
    with pytest.raises(HttpError) as exc:
        service.users().watch(userId="me", body={"topicName": "gmail-topic"}).execute()
    assert exc.value.resp.status == 400
    watch = service.users().watch(userId="me", body={"topicName": TOPIC, "labelIds": ["INBOX"]}).execute()
    now_ms = sandbox.world.now() * 1000
    assert int(watch["expiration"]) == pytest.approx(now_ms + 7 * 86400_000, abs=5000)
    assert watch["historyId"] == service.users().getProfile(userId="me").execute()["historyId"]

    # A change outside the watched labels publishes nothing.
    sent = (
        service.users()
        .messages()
        .insert(
            userId="me",
            body={"raw": _b64(_raw("Out", user["email"], "x@globex.example.net")), "labelIds": ["SENT"]},
        )
        .execute()
    )
    added = (
        service.users()
        .messages()
        .insert(
            userId="me",
            body={"raw": _b64(_raw("In", "x@globex.example.net", user["email"])), "labelIds": ["INBOX"]},
        )
        .execute()
    )
    pushes = receiver.wait_for(1)
    assert sandbox.world.wait_notifications_idle()
    assert len(receiver.received) == 1 and sent["id"]
    push = pushes[0]
    envelope = json.loads(push["_body"])
    data = json.loads(base64.b64decode(envelope["message"]["data"]))
    history_id = service.users().getProfile(userId="me").execute()["historyId"]
    assert data == {"emailAddress": user["email"], "historyId": history_id}
    assert envelope["subscription"] == sub["name"] and envelope["message"]["messageId"]
    token = push["Authorization"].removeprefix("Bearer ")
    claims = id_token.verify_token(
        token,
        google.auth.transport.requests.Request(),
        audience=AUDIENCE,
        certs_url=f"{sandbox.base_url}/oauth2/v1/certs",
    )
    assert claims["aud"] == AUDIENCE and claims["email_verified"]
    delivered = sandbox.world.delivered_pushes
    assert [d["status"] for d in delivered] == [200] and delivered[0]["data"] == data
    # The change the push announced is in the history from the watch's id.
    records, _ = _history_all(service, watch["historyId"])
    assert records[-1]["messagesAdded"][0]["message"]["id"] == added["id"]

    # A subscription made through the admin route gets the next push too (audience = endpoint).
    second = Receiver()
    try:
        made = requests.post(
            f"{sandbox.base_url}/sandbox/pubsub/subscriptions",
            json={"topic": TOPIC, "push_endpoint": second.url},
            timeout=5,
        )
        assert made.status_code == 201 and made.json()["audience"] == second.url
        bad = requests.post(
            f"{sandbox.base_url}/sandbox/pubsub/subscriptions",
            json={"topic": "nope", "push_endpoint": second.url},
            timeout=5,
        )
        assert bad.status_code == 400
        service.users().messages().modify(
            userId="me", id=added["id"], body={"addLabelIds": ["STARRED"]}
        ).execute()
        assert len(receiver.wait_for(2)) == 2 and len(second.wait_for(1)) == 1
        second_token = second.received[0]["Authorization"].removeprefix("Bearer ")
        assert (
            id_token.verify_token(
                second_token,
                google.auth.transport.requests.Request(),
                audience=second.url,
                certs_url=f"{sandbox.base_url}/oauth2/v1/certs",
            )["aud"]
            == second.url
        )
        listed = requests.get(f"{sandbox.base_url}/sandbox/pubsub/subscriptions", timeout=5).json()
        assert len(listed["subscriptions"]) == 2 and len(listed["delivered"]) == 3
        # After users.stop nothing more is published.
        service.users().stop(userId="me").execute()
        service.users().messages().modify(
            userId="me", id=added["id"], body={"removeLabelIds": ["STARRED"]}
        ).execute()
        assert sandbox.world.wait_notifications_idle()
        assert len(receiver.received) == 2 and len(second.received) == 1
    finally:
        second.close()


def test_a_watched_change_becomes_a_gmail_inbox_row(
    sandbox: SandboxServer, connected_users: list[dict[str, Any]], database: Any
) -> None:
    """End to end: the app's webhook receiver authenticates the push and records the mailbox change."""
    from sunny_pipelines.sandbox.push import PUBSUB_SERVICE_ACCOUNT
    from sunny_pipelines.webhooks import WebhookSettings, create_app, serve_in_thread
    from sunny_pipelines_tests.webhooks.conftest import inbox_rows

    settings = WebhookSettings.from_env(
        {
            "SUNNY_DATABASE_URL": database.url,
            "SUNNY_SANDBOX_URL": sandbox.base_url,
            "SUNNY_PUBSUB_AUDIENCE": AUDIENCE,
            "SUNNY_PUBSUB_SERVICE_ACCOUNT": PUBSUB_SERVICE_ACCOUNT,
        }
    )
    served, stop = serve_in_thread(create_app(settings))
    try:
        user = connected_users[0]
        service, _ = _gmail(sandbox)
        sandbox.world.create_push_subscription(TOPIC, f"{served}/webhooks/google/gmail", AUDIENCE)
        service.users().watch(userId="me", body={"topicName": TOPIC}).execute()
        raw = _raw("Hi", "x@globex.example.net", user["email"])
        service.users().messages().insert(
            userId="me", body={"raw": _b64(raw), "labelIds": ["INBOX"]}
        ).execute()
        assert sandbox.world.wait_notifications_idle(10)
    finally:
        stop()
    assert [d["status"] for d in sandbox.world.delivered_pushes] == [200]
    rows = inbox_rows(database)
    history_id = service.users().getProfile(userId="me").execute()["historyId"]
    assert [(r["source"], r["user_id"], r["status"]) for r in rows] == [
        ("google_gmail", user["id"], "pending")
    ]
    assert rows[0]["payload"]["historyId"] == history_id
    assert rows[0]["payload"]["emailAddress"] == user["email"]


def test_seeded_mail_is_realistic(sandbox: SandboxServer) -> None:
    found: dict[str, int] = {}
    uids: set[str] = set()
    for n, user in enumerate(sandbox.world.list_users()):
        service, _ = _gmail(sandbox, n)
        for m in sandbox.world.truth("gmail", user["email"])["messages"]:
            full = service.users().messages().get(userId="me", id=m["id"]).execute()
            parts = _walk(full["payload"])
            top = full["payload"]
            for part in parts:
                if part["mimeType"] == "text/calendar":
                    ics = _text(part)
                    for method in ("REQUEST", "REPLY", "CANCEL"):
                        if f"METHOD:{method}" in ics:
                            found[method] = found.get(method, 0) + 1
                    assert "UID:" in ics and "DTSTART" in ics and "ORGANIZER" in ics
                    if "METHOD:REQUEST" in ics:
                        assert "ATTENDEE;" in ics and "PARTSTAT=" in ics and "SEQUENCE:" in ics
                        uids.add(next(line[4:] for line in ics.splitlines() if line.startswith("UID:")))
            if _header(top, "List-Unsubscribe"):
                assert _header(top, "List-Id") and _header(top, "Precedence") == "bulk"
                found["newsletter"] = found.get("newsletter", 0) + 1
            if _header(top, "Auto-Submitted") == "auto-generated":
                assert "reply" in (_header(top, "From") or "")
                found["automated"] = found.get("automated", 0) + 1
            if _header(top, "In-Reply-To"):
                assert _header(top, "References") and _header(top, "Message-ID")
                found["threaded"] = found.get("threaded", 0) + 1
            if m["subject"].startswith("Accepted:"):
                found["accepted"] = found.get("accepted", 0) + 1
    assert {"REQUEST", "REPLY", "CANCEL", "newsletter", "automated", "threaded"} <= set(found), found
    # Invitations link to the calendar events they invite to.
    calendar_uids = {
        e.get("iCalUID")
        for u in sandbox.world.list_users()
        for items in sandbox.world.calendar_truth(u["email"]).values()
        for e in items
    }
    assert uids & calendar_uids


def test_seeding_is_deterministic_and_fills_every_mailbox() -> None:
    from sunny_pipelines.sandbox.seed import seed_world
    from sunny_pipelines.sandbox.world import World

    worlds = []
    for _ in range(2):
        world = World(seed=5)
        seed_world(world, 3, 12)
        worlds.append(world)
    email = worlds[0].list_users()[0]["email"]
    # Ids and dates follow the clock; everything else follows the seed.
    keys = ("threadId", "id", "internalDate")
    same = [
        [{k: v for k, v in m.items() if k not in keys} for m in w.truth("gmail", email)["messages"]]
        for w in worlds
    ]
    assert same[0] == same[1]
    big = World(seed=3)
    seed_world(big, 200, 20)
    assert all(len(big.services["gmail"].store.mailboxes[u.id].messages) >= 10 for u in big.users.values())


def test_cli_takes_push_subscriptions() -> None:
    args = build_parser().parse_args(
        [
            "--pubsub-subscription",
            f"{TOPIC}=http://127.0.0.1:8000/webhooks/google/gmail",
            "--pubsub-subscription",
            f"{TOPIC}=http://127.0.0.1:8000/webhooks/google/gmail,{AUDIENCE}",
        ]
    )
    assert args.pubsub_subscription == [
        (TOPIC, "http://127.0.0.1:8000/webhooks/google/gmail", None),
        (TOPIC, "http://127.0.0.1:8000/webhooks/google/gmail", AUDIENCE),
    ]
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--pubsub-subscription", "gmail=http://x"])

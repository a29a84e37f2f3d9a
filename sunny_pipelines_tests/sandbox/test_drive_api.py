"""Drive v3 emulation, driven by the real google-api-python-client."""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

import pytest
import requests
from googleapiclient.errors import HttpError
from googleapiclient.http import MediaInMemoryUpload

from sunny_pipelines.sandbox.server import SandboxServer
from sunny_pipelines.sandbox.world import World
from sunny_pipelines_tests.google_clients import google_client
from sunny_pipelines_tests.sandbox.helpers import Receiver

FOLDER = "application/vnd.google-apps.folder"
DOCUMENT = "application/vnd.google-apps.document"
SPREADSHEET = "application/vnd.google-apps.spreadsheet"


def uploading_client(sandbox: SandboxServer, user: dict[str, Any]) -> Any:
    """The Drive client; `google_client` sends its media uploads to the plain-HTTP sandbox."""
    return google_client(sandbox, user, "drive")


def _error(exc: HttpError) -> dict[str, Any]:
    return json.loads(exc.content)["error"]


def list_files(service: Any, **kwargs: Any) -> tuple[list[dict[str, Any]], int]:
    """Every file of a files.list, following pages: (files, pages)."""
    files: list[dict[str, Any]] = []
    pages = 0
    request = service.files().list(**kwargs)
    while request is not None:
        page = request.execute()
        pages += 1
        files.extend(page["files"])
        request = service.files().list_next(request, page)
    return files, pages


def all_changes(service: Any, token: str, page_size: int = 100) -> tuple[list[dict[str, Any]], str, int]:
    """Every change since `token`: (changes, newStartPageToken, pages)."""
    changes: list[dict[str, Any]] = []
    pages = 0
    while True:
        page = service.changes().list(pageToken=token, pageSize=page_size).execute()
        pages += 1
        assert page["kind"] == "drive#changeList"
        changes.extend(page["changes"])
        if "newStartPageToken" in page:
            assert "nextPageToken" not in page
            return changes, page["newStartPageToken"], pages
        token = page["nextPageToken"]


def _start(service: Any) -> str:
    answer = service.changes().getStartPageToken().execute()
    assert answer["kind"] == "drive#startPageToken"
    return answer["startPageToken"]


def test_list_every_page_of_a_seeded_drive(sandbox: SandboxServer) -> None:
    user = sandbox.world.list_users()[0]
    service = google_client(sandbox, user, "drive")
    files, pages = list_files(service, pageSize=4)
    truth = sandbox.world.truth("drive", user["email"])
    assert pages > 1
    assert [f["id"] for f in files] == [f["id"] for f in truth["files"]]
    assert len({f["id"] for f in files}) == len(files) >= 8
    assert files == truth["files"]
    kinds = {f["mimeType"] for f in files}
    assert {FOLDER, DOCUMENT, SPREADSHEET, "application/pdf", "image/png"} <= kinds
    assert any(f["trashed"] for f in files) and any(not f["ownedByMe"] for f in files)
    for f in files:
        assert f["kind"] == "drive#file" and f["createdTime"].endswith("Z") and len(f["modifiedTime"]) == 24
        assert f["owners"][0]["emailAddress"] and f["webViewLink"].startswith("https://")

    # q: trash, parents, types, names, and their combinations.
    live, _ = list_files(service, q="trashed = false")
    assert {f["id"] for f in live} == {f["id"] for f in files if not f["trashed"]}
    in_root, _ = list_files(service, q="'root' in parents and trashed = false")
    assert in_root and all(f["ownedByMe"] for f in in_root)
    folders, _ = list_files(service, q=f"mimeType = '{FOLDER}'")
    assert {f["id"] for f in folders} == {f["id"] for f in files if f["mimeType"] == FOLDER}
    not_folders, _ = list_files(service, q=f"mimeType != '{FOLDER}' and trashed = false")
    assert len(not_folders) + len(folders) == len(live) + sum(f["trashed"] for f in folders)
    project = next(f for f in folders if f["name"].startswith("Project ") and f["ownedByMe"])
    inside, _ = list_files(service, q=f"'{project['id']}' in parents")
    assert {f["id"] for f in inside} == {f["id"] for f in files if project["id"] in f.get("parents", [])}
    named, _ = list_files(service, q="name contains 'meeting' and not trashed = true")
    assert [f["name"] for f in named] == ["Meeting notes"]
    either, _ = list_files(service, q="mimeType = 'application/pdf' or mimeType = 'image/png'")
    assert either and {f["mimeType"] for f in either} == {"application/pdf", "image/png"}

    with pytest.raises(HttpError) as bad_q:
        service.files().list(q="name lacks 'x'").execute()
    assert bad_q.value.resp.status == 400 and _error(bad_q.value)["errors"][0]["location"] == "q"
    with pytest.raises(HttpError) as bad_size:
        service.files().list(pageSize=1001).execute()
    assert bad_size.value.resp.status == 400


def test_md5_and_size_only_for_binary_files(sandbox: SandboxServer) -> None:
    user = sandbox.world.list_users()[1]
    files, _ = list_files(google_client(sandbox, user, "drive"))
    for f in files:
        google_type = f["mimeType"].startswith("application/vnd.google-apps.")
        assert ("md5Checksum" in f) is (not google_type) and ("size" in f) is (not google_type)
    pdf = next(f for f in files if f["mimeType"] == "application/pdf")
    content = google_client(sandbox, user, "drive").files().get_media(fileId=pdf["id"]).execute()
    assert content.startswith(b"%PDF-") and hashlib.md5(content).hexdigest() == pdf["md5Checksum"]
    assert int(pdf["size"]) == len(content)


def test_every_write_appears_in_changes_across_pages(sandbox: SandboxServer) -> None:
    user = sandbox.world.list_users()[0]
    service = uploading_client(sandbox, user)
    live = list_files(service, q="trashed = false")[0]
    docs = [f for f in live if f["mimeType"] != FOLDER and f["ownedByMe"]]
    folder = next(f for f in live if f["name"] == "Meeting notes")
    start = _start(service)

    created = (
        service.files()
        .create(
            body={"name": "plan.txt", "parents": [folder["id"]]},
            media_body=MediaInMemoryUpload(b"first draft\n", mimetype="text/plain"),
        )
        .execute()
    )
    assert created["mimeType"] == "text/plain" and created["parents"] == [folder["id"]]
    assert created["md5Checksum"] == hashlib.md5(b"first draft\n").hexdigest() and created["size"] == "12"
    empty_folder = service.files().create(body={"name": "Archive", "mimeType": FOLDER}).execute()
    renamed = service.files().update(fileId=docs[0]["id"], body={"name": "Renamed doc"}).execute()
    assert renamed["name"] == "Renamed doc" and int(renamed["version"]) > int(docs[0]["version"])
    moved = (
        service.files()
        .update(fileId=docs[1]["id"], addParents=empty_folder["id"], removeParents=docs[1]["parents"][0])
        .execute()
    )
    assert moved["parents"] == [empty_folder["id"]]
    trashed = service.files().update(fileId=docs[2]["id"], body={"trashed": True}).execute()
    assert trashed["trashed"] is True and trashed["explicitlyTrashed"] is True
    service.files().update(fileId=docs[3]["id"], body={"trashed": True}).execute()
    untrashed = service.files().update(fileId=docs[3]["id"], body={"trashed": False}).execute()
    assert untrashed["trashed"] is False
    time.sleep(0.01)  # so the new content's modifiedTime differs at millisecond precision
    rewritten = (
        service.files()
        .update(
            fileId=created["id"], media_body=MediaInMemoryUpload(b"second draft\n", mimetype="text/plain")
        )
        .execute()
    )
    assert rewritten["md5Checksum"] == hashlib.md5(b"second draft\n").hexdigest()
    assert rewritten["modifiedTime"] > created["modifiedTime"] and rewritten["version"] != created["version"]
    service.files().delete(fileId=docs[4]["id"]).execute()
    with pytest.raises(HttpError) as gone:
        service.files().get(fileId=docs[4]["id"]).execute()
    assert gone.value.resp.status == 404 and _error(gone.value)["errors"][0]["reason"] == "notFound"

    changes, new_start, pages = all_changes(service, start, page_size=2)
    assert pages >= 3
    by_file = {c["fileId"]: c for c in changes}
    assert len(by_file) == len(changes) == 7  # one entry per file, in its latest state
    assert all(c["kind"] == "drive#change" and c["changeType"] == "file" for c in changes)
    assert by_file[created["id"]]["file"]["md5Checksum"] == rewritten["md5Checksum"]
    assert by_file[empty_folder["id"]]["file"]["mimeType"] == FOLDER
    assert by_file[docs[0]["id"]]["file"]["name"] == "Renamed doc"
    assert by_file[docs[1]["id"]]["file"]["parents"] == [empty_folder["id"]]
    assert by_file[docs[2]["id"]]["file"]["trashed"] is True
    assert by_file[docs[3]["id"]]["file"]["trashed"] is False
    deleted = by_file[docs[4]["id"]]
    assert deleted["removed"] is True and "file" not in deleted
    assert not any(c["removed"] for c in changes if c is not deleted)

    # From the new start token: nothing, then exactly the next change.
    assert all_changes(service, new_start)[0] == []
    service.files().update(fileId=docs[0]["id"], body={"name": "Renamed again"}).execute()
    again, _, _ = all_changes(service, new_start)
    assert [(c["fileId"], c["file"]["name"]) for c in again] == [(docs[0]["id"], "Renamed again")]
    without_removed = service.changes().list(pageToken=start, includeRemoved=False).execute()
    assert docs[4]["id"] not in {c["fileId"] for c in without_removed["changes"]}


def test_unchanged_account_costs_one_call(sandbox: SandboxServer) -> None:
    user = sandbox.world.list_users()[2]
    service = google_client(sandbox, user, "drive")
    token = _start(service)
    sandbox.world.reset_counters()
    changes, new_start, pages = all_changes(service, token)
    assert changes == [] and pages == 1 and new_start
    assert sandbox.world.request_count(user["email"], "/drive/v3/changes") == 1


def test_shared_files_change_for_everyone_who_sees_them(sandbox: SandboxServer) -> None:
    owner, colleague = sandbox.world.list_users()[:2]
    mine = google_client(sandbox, owner, "drive")
    theirs = google_client(sandbox, colleague, "drive")
    shared = next(
        f for f in list_files(mine)[0] if f["shared"] and f["ownedByMe"] and f["mimeType"] != FOLDER
    )
    seen = theirs.files().get(fileId=shared["id"]).execute()
    assert seen["ownedByMe"] is False and seen["owners"][0]["emailAddress"] == owner["email"]
    token = _start(theirs)
    mine.files().update(fileId=shared["id"], body={"name": "Shared, renamed"}).execute()
    changes, token, _ = all_changes(theirs, token)
    assert [(c["fileId"], c["file"]["name"]) for c in changes] == [(shared["id"], "Shared, renamed")]
    # The colleague may edit but not trash what is not theirs; a refused update changes nothing.
    with pytest.raises(HttpError) as refused:
        theirs.files().update(fileId=shared["id"], body={"name": "Mine now", "trashed": True}).execute()
    assert refused.value.resp.status == 403
    assert _error(refused.value)["errors"][0]["reason"] == "insufficientFilePermissions"
    assert mine.files().get(fileId=shared["id"]).execute()["name"] == "Shared, renamed"
    edited = theirs.files().update(fileId=shared["id"], body={"description": "reviewed"}).execute()
    assert edited["lastModifyingUser"]["emailAddress"] == colleague["email"]
    changes, token, _ = all_changes(theirs, token)
    assert [c["file"]["description"] for c in changes] == ["reviewed"]
    # Losing access reads as a removal.
    permissions = mine.permissions().list(fileId=shared["id"]).execute()["permissions"]
    theirs_perm = next(p for p in permissions if p["emailAddress"] == colleague["email"])
    mine.permissions().delete(fileId=shared["id"], permissionId=theirs_perm["id"]).execute()
    changes, token, _ = all_changes(theirs, token)
    assert [(c["fileId"], c["removed"]) for c in changes] == [(shared["id"], True)]
    with pytest.raises(HttpError) as gone:
        theirs.files().get(fileId=shared["id"]).execute()
    assert gone.value.resp.status == 404
    # Sharing it again brings it back, in both drives' changes.
    mine_token = _start(mine)
    perm = (
        mine.permissions()
        .create(
            fileId=shared["id"], body={"type": "user", "role": "reader", "emailAddress": colleague["email"]}
        )
        .execute()
    )
    assert perm["role"] == "reader" and perm["id"] == theirs_perm["id"]
    changes, _, _ = all_changes(theirs, token)
    assert [(c["fileId"], c["removed"], c["file"]["capabilities"]["canEdit"]) for c in changes] == [
        (shared["id"], False, False)
    ]
    assert [c["fileId"] for c in all_changes(mine, mine_token)[0]] == [shared["id"]]


def test_export_of_docs_editors_files(sandbox: SandboxServer) -> None:
    user = sandbox.world.list_users()[0]
    service = uploading_client(sandbox, user)
    doc = (
        service.files()
        .create(
            body={"name": "Kickoff notes", "mimeType": DOCUMENT},
            media_body=MediaInMemoryUpload(
                "Kickoff\nBudget approved: €40k\n".encode(), mimetype="text/plain"
            ),
        )
        .execute()
    )
    assert doc["mimeType"] == DOCUMENT and "md5Checksum" not in doc and "size" not in doc
    text = service.files().export(fileId=doc["id"], mimeType="text/plain").execute()
    # Drive exports a Doc as UTF-8 text with a byte order mark and CRLF line ends.
    assert text.decode("utf-8") == "\ufeffKickoff\r\nBudget approved: €40k\r\n"
    truth = sandbox.world.truth("drive", user["email"])
    assert truth["exports"][doc["id"]] == text.decode("utf-8")
    sheet = next(f for f in truth["files"] if f["mimeType"] == SPREADSHEET)
    csv = service.files().export(fileId=sheet["id"], mimeType="text/csv").execute().decode()
    assert csv == truth["exports"][sheet["id"]] and "," in csv.splitlines()[0]

    pdf = next(f for f in truth["files"] if f["mimeType"] == "application/pdf")
    with pytest.raises(HttpError) as not_exportable:
        service.files().export(fileId=pdf["id"], mimeType="text/plain").execute()
    assert not_exportable.value.resp.status == 403
    assert _error(not_exportable.value)["errors"][0]["reason"] == "fileNotExportable"
    with pytest.raises(HttpError) as not_downloadable:
        service.files().get_media(fileId=doc["id"]).execute()
    assert not_downloadable.value.resp.status == 403
    with pytest.raises(HttpError) as unsupported:
        service.files().export(fileId=doc["id"], mimeType="text/csv").execute()
    assert unsupported.value.resp.status == 400


def test_simple_and_resumable_uploads(sandbox: SandboxServer) -> None:
    user = sandbox.world.list_users()[0]
    service = uploading_client(sandbox, user)
    simple = (
        service.files().create(media_body=MediaInMemoryUpload(b"\x00\x01", mimetype="image/png")).execute()
    )
    assert simple["name"] == "Untitled" and simple["mimeType"] == "image/png" and simple["size"] == "2"
    big = bytes(range(256)) * 2500  # 640,000 bytes: three chunks of at most 256 KiB
    media = MediaInMemoryUpload(big, mimetype="application/pdf", chunksize=256 * 1024, resumable=True)
    request = service.files().create(body={"name": "scan.pdf"}, media_body=media)
    response = None
    chunks = 0
    while response is None:
        _, response = request.next_chunk()
        chunks += 1
    assert chunks == 3 and response["name"] == "scan.pdf" and response["size"] == str(len(big))
    assert response["md5Checksum"] == hashlib.md5(big).hexdigest()
    assert service.files().get_media(fileId=response["id"]).execute() == big


def test_invalidated_page_tokens_fail_like_drive(sandbox: SandboxServer) -> None:
    user = sandbox.world.list_users()[0]
    service = google_client(sandbox, user, "drive")
    token = _start(service)
    listing = service.files().list(pageSize=2).execute()
    sandbox.world.inject_fault("invalidate_page_tokens", user_email=user["email"])
    for call in (
        lambda: service.changes().list(pageToken=token).execute(),
        lambda: service.files().list(pageSize=2, pageToken=listing["nextPageToken"]).execute(),
        lambda: service.changes().list(pageToken="not-a-token").execute(),
    ):
        with pytest.raises(HttpError) as invalid:
            call()
        assert invalid.value.resp.status == 400
        error = _error(invalid.value)
        assert error["message"] == "Invalid Value"
        assert error["errors"][0]["reason"] == "invalid" and error["errors"][0]["location"] == "pageToken"
    fresh = _start(service)
    assert all_changes(service, fresh)[0] == []
    # Other users' tokens are untouched.
    other = google_client(sandbox, sandbox.world.list_users()[1], "drive")
    other_token = _start(other)
    sandbox.world.inject_fault("invalidate_page_tokens", user_email=user["email"])
    assert other.changes().list(pageToken=other_token).execute()["changes"] == []


def test_changes_watch_notifies_and_stops(sandbox: SandboxServer, receiver: Receiver) -> None:
    user = sandbox.world.list_users()[0]
    service = google_client(sandbox, user, "drive")
    token = _start(service)
    before = time.time()
    channel = (
        service.changes()
        .watch(pageToken=token, body={"id": "drive-chan-1", "type": "web_hook", "address": receiver.url})
        .execute()
    )
    assert channel["kind"] == "api#channel" and channel["id"] == "drive-chan-1"
    assert channel["resourceUri"].startswith(sandbox.base_url + "/drive/v3/changes")
    # No expiration asked: Drive gives the channel one hour.
    assert abs(int(channel["expiration"]) / 1000 - (before + 3600)) < 60
    sync = receiver.wait_for(1)[0]
    assert sync["X-Goog-Resource-State"] == "sync" and sync["X-Goog-Channel-ID"] == "drive-chan-1"

    first = list_files(service, q="trashed = false and 'root' in parents")[0][0]
    service.files().update(fileId=first["id"], body={"name": "Poked"}).execute()
    got = receiver.wait_for(2)
    assert len(got) == 2
    change = got[1]
    assert change["X-Goog-Resource-State"] == "change" and change["_body"] == ""
    assert change["X-Goog-Channel-ID"] == "drive-chan-1"
    assert change["X-Goog-Resource-ID"] == channel["resourceId"]
    assert change["X-Goog-Message-Number"] == "2"

    service.channels().stop(body={"id": "drive-chan-1", "resourceId": channel["resourceId"]}).execute()
    service.files().update(fileId=first["id"], body={"name": "Poked again"}).execute()
    assert sandbox.world.wait_notifications_idle()
    assert len(receiver.wait_for(3, timeout=0.5)) == 2
    with pytest.raises(HttpError) as bad_token:
        service.changes().watch(
            pageToken="stale", body={"id": "drive-chan-2", "type": "web_hook", "address": receiver.url}
        ).execute()
    assert bad_token.value.resp.status == 400


def test_truth_endpoint_matches_a_full_listing(sandbox: SandboxServer) -> None:
    for user in sandbox.world.list_users():
        files, _ = list_files(google_client(sandbox, user, "drive"), pageSize=1000)
        truth = requests.get(
            f"{sandbox.base_url}/sandbox/drive/truth", params={"email": user["email"]}, timeout=10
        ).json()
        assert truth["files"] == files
        docs = {f["id"] for f in files if f["mimeType"].startswith("application/vnd.google-apps.")}
        docs -= {f["id"] for f in files if f["mimeType"] == FOLDER}
        assert set(truth["exports"]) == docs


def test_errors_are_google_shaped(sandbox: SandboxServer) -> None:
    user = sandbox.world.list_users()[0]
    service = google_client(sandbox, user, "drive")
    with pytest.raises(HttpError) as missing:
        service.files().get(fileId="1doesnotexist").execute()
    assert missing.value.resp.status == 404
    assert _error(missing.value)["errors"][0]["reason"] == "notFound"
    root = service.files().get(fileId="root").execute()
    assert root["mimeType"] == FOLDER and root["name"] == "My Drive"
    answer = requests.get(
        f"{sandbox.base_url}/drive/v3/files", headers={"Authorization": "Bearer nope"}, timeout=10
    )
    assert answer.status_code == 401
    answer = requests.get(
        f"{sandbox.base_url}/drive/v3/changes",
        headers={"Authorization": f"Bearer {user['access_token']}"},
        timeout=10,
    )
    assert answer.status_code == 400 and answer.json()["error"]["errors"][0]["reason"] == "required"


def test_seeding_is_deterministic_and_fast() -> None:
    from sunny_pipelines.sandbox.seed import seed_world

    def drive_of(world: World) -> list[tuple[str, str, str | None]]:
        email = world.list_users()[3]["email"]
        return [(f["id"], f["name"], f.get("md5Checksum")) for f in world.truth("drive", email)["files"]]

    one, two = World(seed=5), World(seed=5)
    seed_world(one, 5, 12)
    seed_world(two, 5, 12)
    assert drive_of(one) == drive_of(two)

    big = World(seed=5, services=["google_oauth", "drive"])
    started = time.perf_counter()
    seed_world(big, 200, 40)
    assert time.perf_counter() - started < 2.0
    files = big.services["drive"].store.files
    assert len(files) >= 200 * 20


def test_a_folder_takes_its_content_to_trash_and_away(sandbox: SandboxServer) -> None:
    user = sandbox.world.list_users()[2]
    service = uploading_client(sandbox, user)
    folder = service.files().create(body={"name": "Old stuff", "mimeType": FOLDER}).execute()
    inner = (
        service.files()
        .create(body={"name": "Inner", "mimeType": FOLDER, "parents": [folder["id"]]})
        .execute()
    )
    note = (
        service.files()
        .create(
            body={"name": "note.txt", "parents": [inner["id"]]},
            media_body=MediaInMemoryUpload(b"hi", mimetype="text/plain"),
        )
        .execute()
    )
    token = _start(service)
    service.files().update(fileId=folder["id"], body={"trashed": True}).execute()
    got = service.files().get(fileId=note["id"]).execute()
    assert got["trashed"] is True and got["explicitlyTrashed"] is False
    changes, token, _ = all_changes(service, token)
    assert {c["fileId"] for c in changes} == {folder["id"], inner["id"], note["id"]}
    assert {f["id"] for f in list_files(service, q=f"'{inner['id']}' in parents and trashed = true")[0]} == {
        note["id"]
    }
    service.files().update(fileId=folder["id"], body={"trashed": False}).execute()
    assert service.files().get(fileId=note["id"]).execute()["trashed"] is False
    service.files().delete(fileId=folder["id"]).execute()
    changes, _, _ = all_changes(service, token)
    assert {c["fileId"]: c["removed"] for c in changes} == {
        folder["id"]: True,
        inner["id"]: True,
        note["id"]: True,
    }
    assert note["id"] not in {f["id"] for f in list_files(service)[0]}

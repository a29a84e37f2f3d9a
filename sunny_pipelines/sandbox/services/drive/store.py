"""Drive v3 state and semantics: files and folders, sharing, trash, content, exports, the changes feed.

Every user has a Drive account: a root folder (`root` is its alias; it is never listed) and a change
feed (`core.change_feed`). A file is visible to its owner and to the users it is shared with. Each
change to a file (create, rename, move, trash, untrash, new content, delete, sharing) advances the
feed of every user who could see the file before or can see it now, and stores that user's latest
change of the file, so `changes.list` shows each file once with its current state (Google collapses
the same way); a user who can no longer see the file (deleted, or unshared) gets `removed: true` and
no `file`. Each affected user's `changes.watch` channels are notified once per operation, with
`X-Goog-Resource-State: change`.

Page tokens (`changes` start / next page tokens and `files.list` page tokens) are opaque and signed.
A token the sandbox does not honour (malformed, from another process, or issued before the
`invalidate_page_tokens` fault) is answered as Drive answers an invalid page token:
HTTP 400, reason `invalid`, message "Invalid Value", `location: pageToken`, `locationType: parameter`.

Google Docs editors files (Docs, Sheets, Slides) hold their export text: Docs export `text/plain`
as Google does (UTF-8 with a byte order mark, CRLF line ends), Sheets `text/csv`, Slides `text/plain`.
Only binary files have `size` and `md5Checksum`.

All methods take the world lock; they return fresh dicts, safe to serialise after it is released.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sunny_pipelines.sandbox.core.change_feed import ChangeFeed
from sunny_pipelines.sandbox.core.channels import WatchTarget
from sunny_pipelines.sandbox.core.common import ApiError, bad_request, rfc3339_millis, stable_id
from sunny_pipelines.sandbox.services.drive.query import QueryError, parse

if TYPE_CHECKING:
    import random

    from sunny_pipelines.sandbox.core.accounts import User
    from sunny_pipelines.sandbox.world import World

CHANGES_WATCH = "drive-changes"  # one user's changes feed; named by user id

DRIVE_SCOPES = frozenset(
    {
        "https://www.googleapis.com/auth/drive",
        "https://www.googleapis.com/auth/drive.file",
        "https://www.googleapis.com/auth/drive.readonly",
        "https://www.googleapis.com/auth/drive.metadata",
        "https://www.googleapis.com/auth/drive.metadata.readonly",
    }
)
_WRITE_SCOPES = frozenset(
    {"https://www.googleapis.com/auth/drive", "https://www.googleapis.com/auth/drive.file"}
)
_CONTENT_SCOPES = _WRITE_SCOPES | {"https://www.googleapis.com/auth/drive.readonly"}

FOLDER = "application/vnd.google-apps.folder"
DOCUMENT = "application/vnd.google-apps.document"
SPREADSHEET = "application/vnd.google-apps.spreadsheet"
PRESENTATION = "application/vnd.google-apps.presentation"
GOOGLE_APPS = "application/vnd.google-apps."
# The export each Docs editors type offers here (Google offers more formats; the pipeline reads text).
EXPORTS = {DOCUMENT: "text/plain", SPREADSHEET: "text/csv", PRESENTATION: "text/plain"}
EXPORT_SIZE_LIMIT = 10 * 1024 * 1024  # Google refuses to export more than 10 MB

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
_FILES_PAGE = "drive-files-page"

_VIEW_LINKS = {
    DOCUMENT: "https://docs.google.com/document/d/{id}/edit?usp=drivesdk",
    SPREADSHEET: "https://docs.google.com/spreadsheets/d/{id}/edit?usp=drivesdk",
    PRESENTATION: "https://docs.google.com/presentation/d/{id}/edit?usp=drivesdk",
    FOLDER: "https://drive.google.com/drive/folders/{id}",
}
_BINARY_VIEW_LINK = "https://drive.google.com/file/d/{id}/view?usp=drivesdk"


def invalid_page_token() -> ApiError:
    """Drive's answer to a page token it does not honour."""
    return ApiError(400, "invalid", "Invalid Value", location="pageToken", locationType="parameter")


def invalid_parameter(name: str, message: str = "Invalid Value") -> ApiError:
    return ApiError(400, "invalid", message, location=name, locationType="parameter")


def file_not_found(file_id: str) -> ApiError:
    return ApiError(
        404, "notFound", f"File not found: {file_id}.", location="fileId", locationType="parameter"
    )


def insufficient_permissions() -> ApiError:
    return ApiError(
        403, "insufficientFilePermissions", "The user does not have sufficient permissions for this file."
    )


def new_file_id(rng: random.Random | None = None) -> str:
    """A Drive-looking file id: 33 characters of the URL-safe base64 alphabet, starting with `1`."""
    raw = rng.randbytes(24) if rng is not None else secrets.token_bytes(24)
    return "1" + base64.urlsafe_b64encode(raw).decode()[:32]


def is_google_type(mime_type: str) -> bool:
    return mime_type.startswith(GOOGLE_APPS)


def docs_text_export(text: str) -> bytes:
    """A Google Doc as `text/plain`: a byte order mark and CRLF line ends, as Drive exports it."""
    return ("\ufeff" + text.replace("\r\n", "\n").replace("\n", "\r\n")).encode()


# ---------------------------------------------------------------- data


@dataclass
class DriveFile:
    id: str
    name: str
    mime_type: str
    owner_id: str
    serial: int  # creation order: the stable order of files.list
    created: float
    modified: float
    parents: list[str] = field(default_factory=list)
    content: bytes = b""  # binary files: their bytes; Docs editors files: their export
    md5: str | None = None
    description: str | None = None
    starred: bool = False
    trashed: bool = False
    explicitly_trashed: bool = False
    trashed_time: float | None = None
    version: int = 1
    shared_with: dict[str, str] = field(default_factory=dict)  # user id -> role (reader | writer)
    last_modifying_user_id: str | None = None
    original_filename: str | None = None
    is_root: bool = False

    @property
    def is_folder(self) -> bool:
        return self.mime_type == FOLDER

    @property
    def binary(self) -> bool:
        return not is_google_type(self.mime_type)

    def viewers(self) -> set[str]:
        return {self.owner_id, *self.shared_with}

    def set_content(self, content: bytes) -> None:
        self.content = content
        self.md5 = hashlib.md5(content).hexdigest() if self.binary else None


@dataclass
class Change:
    """A user's latest change of one file."""

    seq: int
    time: float
    removed: bool


@dataclass
class DriveAccount:
    user_id: str
    root_id: str
    feed: ChangeFeed  # every change the user can see advances it; page tokens name it
    changes: dict[str, Change] = field(default_factory=dict)  # by file id


# ---------------------------------------------------------------- the store


class DriveStore:
    def __init__(self, world: World) -> None:
        self.world = world
        self.files: dict[str, DriveFile] = {}
        self.accounts: dict[str, DriveAccount] = {}  # by user id
        self._serial = 0

    # -- setup -------------------------------------------------------------------------------------------

    def add_account(self, user: User) -> DriveAccount:
        """The user's My Drive (a root folder, never listed) and changes feed."""
        with self.world.lock:
            if user.id in self.accounts:
                return self.accounts[user.id]
            now = _millis(self.world.now())
            # Root ids look like "0A...Uk9PVA" at Google; derived from the user id, so seeds are reproducible.
            digest = base64.urlsafe_b64encode(hashlib.sha256(f"drive-root:{user.id}".encode()).digest())
            root_id = "0A" + digest.decode()[:13] + "Uk9PVA"
            root = DriveFile(root_id, "My Drive", FOLDER, user.id, 0, now, now, is_root=True)
            self.files[root.id] = root
            feed = ChangeFeed(CHANGES_WATCH, user.id, self.world.codec, expired=invalid_page_token)
            account = self.accounts[user.id] = DriveAccount(user.id, root.id, feed)
            return account

    def put_file(
        self,
        owner_id: str,
        name: str,
        mime_type: str,
        parent_id: str | None = None,
        content: bytes = b"",
        created: float | None = None,
        modified: float | None = None,
        shared_with: dict[str, str] | None = None,
        trashed: bool = False,
        file_id: str | None = None,
        description: str | None = None,
        rng: random.Random | None = None,
    ) -> DriveFile:
        """Store a file directly (seeding, tests): records the change for everyone who sees it."""
        with self.world.lock:
            now = self.world.now()
            self._serial += 1
            f = DriveFile(
                file_id or new_file_id(rng),
                name,
                mime_type,
                owner_id,
                self._serial,
                _millis(created if created is not None else now),
                _millis(modified if modified is not None else (created if created is not None else now)),
                [parent_id or self.accounts[owner_id].root_id],
                description=description,
                shared_with=dict(shared_with or {}),
                last_modifying_user_id=owner_id,
            )
            f.set_content(content)
            if trashed:
                f.trashed = f.explicitly_trashed = True
                f.trashed_time = f.modified
            self.files[f.id] = f
            self._record([(f, set())])
            return f

    def share(self, file_id: str, user_id: str, role: str = "writer") -> None:
        """Share a file (and, for a folder, what it holds) with a user: it appears in their changes."""
        with self.world.lock:
            touched = []
            for f in self._subtree(self.files[file_id]):
                touched.append((f, f.viewers()))
                f.shared_with[user_id] = role
            self._record(touched)

    def unshare(self, file_id: str, user_id: str) -> None:
        """Take a user's access away: their changes say the file was removed."""
        with self.world.lock:
            touched = []
            for f in self._subtree(self.files[file_id]):
                touched.append((f, f.viewers()))
                f.shared_with.pop(user_id, None)
            self._record(touched)

    # -- permissions (sharing with the sandbox's users) ---------------------------------------------------

    def _permission_id(self, user_id: str) -> str:
        return str(int(stable_id("drive-permission", user_id, length=12), 32))

    def _permission(self, user_id: str, role: str) -> dict[str, Any]:
        user = self.world.users[user_id]
        return {
            "kind": "drive#permission",
            "id": self._permission_id(user_id),
            "type": "user",
            "emailAddress": user.email,
            "role": role,
            "displayName": user.name,
        }

    def list_permissions(self, user: User, file_id: str) -> dict[str, Any]:
        with self.world.lock:
            f = self.resolve(user, file_id)
            perms = [self._permission(f.owner_id, "owner")]
            perms += [self._permission(uid, role) for uid, role in f.shared_with.items()]
            return {"kind": "drive#permissionList", "permissions": perms}

    def create_permission(self, user: User, file_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """`permissions.create` for a user of the sandbox (`type: user`, role reader or writer)."""
        with self.world.lock:
            f = self.resolve(user, file_id, write=True)
            role = body.get("role")
            if body.get("type") != "user" or role not in ("reader", "writer", "commenter"):
                raise bad_request("The sandbox shares with users as reader, commenter or writer.")
            target = self.world.user_by_email(str(body.get("emailAddress") or ""))
            if target is None:
                raise bad_request(
                    'Bad Request. User message: "The email address is not a sandbox user."',
                    reason="invalidSharingRequest",
                )
            if target.id != f.owner_id:
                self.share(f.id, target.id, "writer" if role == "writer" else "reader")
            return self._permission(target.id, "owner" if target.id == f.owner_id else role)

    def delete_permission(self, user: User, file_id: str, permission_id: str) -> None:
        with self.world.lock:
            f = self.resolve(user, file_id, write=True)
            target = next((u for u in f.shared_with if self._permission_id(u) == permission_id), None)
            if target is None:
                raise ApiError(404, "notFound", f"Permission not found: {permission_id}.")
            self.unshare(f.id, target)

    # -- access ------------------------------------------------------------------------------------------

    def account(self, user: User) -> DriveAccount:
        account = self.accounts.get(user.id)
        if account is None:
            raise file_not_found("root")
        return account

    def resolve(self, user: User, file_id: str, write: bool = False, own: bool = False) -> DriveFile:
        """The file `file_id` (or `root`) as `user` may use it: 404 when invisible, 403 when not allowed."""
        account = self.account(user)
        f = self.files.get(account.root_id if file_id == "root" else file_id)
        if f is None or user.id not in f.viewers():
            raise file_not_found(file_id)
        if own and f.owner_id != user.id:
            raise insufficient_permissions()
        if write and f.owner_id != user.id and f.shared_with.get(user.id) != "writer":
            raise insufficient_permissions()
        return f

    @staticmethod
    def check_write_scope(scopes: frozenset[str]) -> None:
        if not scopes & _WRITE_SCOPES:
            raise ApiError(403, "insufficientPermissions", "Request had insufficient authentication scopes.")

    @staticmethod
    def check_content_scope(scopes: frozenset[str]) -> None:
        if not scopes & _CONTENT_SCOPES:
            raise ApiError(403, "insufficientPermissions", "Request had insufficient authentication scopes.")

    def _subtree(self, top: DriveFile) -> list[DriveFile]:
        """`top` and, for a folder, every file below it (a folder's content follows it to trash)."""
        out = [top]
        if top.is_folder:
            children: dict[str, list[DriveFile]] = {}
            for f in self.files.values():
                for p in f.parents:
                    children.setdefault(p, []).append(f)
            i = 0
            while i < len(out):
                out.extend(c for c in children.get(out[i].id, ()) if c not in out)
                i += 1
        return out

    # -- resources ---------------------------------------------------------------------------------------

    def _person(self, user_id: str | None, viewer_id: str) -> dict[str, Any]:
        user = self.world.users.get(user_id or "")
        if user is None:
            return {"kind": "drive#user", "displayName": "Unknown user", "me": False}
        return {
            "kind": "drive#user",
            "displayName": user.name,
            "me": user.id == viewer_id,
            "permissionId": self._permission_id(user.id),
            "emailAddress": user.email,
        }

    def resource(self, f: DriveFile, viewer_id: str) -> dict[str, Any]:
        """The file as `files.get` returns it to `viewer_id` (every field: `fields` is not applied)."""
        out: dict[str, Any] = {"kind": "drive#file", "id": f.id, "name": f.name, "mimeType": f.mime_type}
        if f.description is not None:
            out["description"] = f.description
        out["starred"] = f.starred
        out["trashed"] = f.trashed
        out["explicitlyTrashed"] = f.explicitly_trashed
        if f.trashed and f.trashed_time is not None:
            out["trashedTime"] = rfc3339_millis(f.trashed_time)
        # A viewer sees the parents they can see: their own My Drive or folders shared with them.
        parents = [p for p in f.parents if p in self.files and viewer_id in self.files[p].viewers()]
        if parents:
            out["parents"] = parents
        out["spaces"] = ["drive"]
        out["version"] = str(f.version)
        out["webViewLink"] = _VIEW_LINKS.get(f.mime_type, _BINARY_VIEW_LINK).format(id=f.id)
        out["iconLink"] = f"https://drive-thirdparty.googleusercontent.com/16/type/{f.mime_type}"
        out["createdTime"] = rfc3339_millis(f.created)
        out["modifiedTime"] = rfc3339_millis(f.modified)
        if f.owner_id == viewer_id:
            out["modifiedByMeTime"] = rfc3339_millis(f.modified)
        out["owners"] = [self._person(f.owner_id, viewer_id)]
        out["lastModifyingUser"] = self._person(f.last_modifying_user_id, viewer_id)
        out["shared"] = bool(f.shared_with)
        out["ownedByMe"] = f.owner_id == viewer_id
        role = "owner" if f.owner_id == viewer_id else f.shared_with.get(viewer_id, "reader")
        out["capabilities"] = {
            "canEdit": role in ("owner", "writer"),
            "canRename": role in ("owner", "writer"),
            "canTrash": role == "owner",
            "canDelete": role == "owner",
            "canDownload": True,
            "canAddChildren": f.is_folder and role in ("owner", "writer"),
        }
        if f.binary:
            out["originalFilename"] = f.original_filename or f.name
            if "." in f.name:
                out["fullFileExtension"] = f.name.split(".", 1)[1]
                out["fileExtension"] = f.name.rsplit(".", 1)[1]
            out["md5Checksum"] = f.md5
            out["size"] = str(len(f.content))
            out["headRevisionId"] = stable_id("drive-revision", f.id, str(f.version), length=16)
        out["quotaBytesUsed"] = str(len(f.content) if f.binary else 0)
        return out

    def _searchable(self, f: DriveFile, viewer: User, account: DriveAccount) -> dict[str, Any]:
        parents = set(f.parents)
        if account.root_id in parents:
            parents.add("root")
        owner = self.world.users.get(f.owner_id)
        owners = {owner.email} if owner else set()
        writers = set(owners) | {self.world.users[u].email for u, r in f.shared_with.items() if r == "writer"}
        readers = writers | {self.world.users[u].email for u in f.shared_with}
        for group in (owners, writers, readers):
            if viewer.email in group:
                group.add("me")
        text = f.content.decode("utf-8", "replace") if not f.binary else ""
        return {
            "name": f.name,
            "mimeType": f.mime_type,
            "trashed": f.trashed,
            "starred": f.starred,
            "parents": parents,
            "owners": owners,
            "writers": writers,
            "readers": readers,
            "sharedWithMe": f.owner_id != viewer.id,
            "modifiedTime": f.modified,
            "createdTime": f.created,
            "fullText": " ".join(filter(None, (f.name, f.description, text))),
        }

    def visible_files(self, user: User) -> list[DriveFile]:
        """Every file the user sees (trashed included; never a root folder), in creation order."""
        return sorted(
            (f for f in self.files.values() if not f.is_root and user.id in f.viewers()),
            key=lambda f: f.serial,
        )

    # -- files: reads -------------------------------------------------------------------------------------

    def list_files(self, user: User, q: str | None, page_size: int, page_token: str | None) -> dict[str, Any]:
        with self.world.lock:
            account = self.account(user)
            try:
                predicate = parse(q)
            except QueryError:
                raise invalid_parameter("q") from None
            after = 0
            if page_token:
                page = self.world.codec.decode(page_token)
                if (
                    not page
                    or page.get("kind") != _FILES_PAGE
                    or page.get("user") != user.id
                    or page.get("q") != (q or "")
                    or page.get("epoch") != account.feed.epoch
                ):
                    raise invalid_page_token()
                after = int(page["after"])
            rows = []
            for f in self.visible_files(user):
                if f.serial <= after:
                    continue
                if predicate is None or predicate(self._searchable(f, user, account)):
                    rows.append(f)
                    if len(rows) > page_size:
                        break
            page_files, more = rows[:page_size], len(rows) > page_size
            out: dict[str, Any] = {"kind": "drive#fileList", "incompleteSearch": False}
            if more:
                out["nextPageToken"] = self.world.codec.encode(
                    {
                        "kind": _FILES_PAGE,
                        "user": user.id,
                        "q": q or "",
                        "after": page_files[-1].serial,
                        "epoch": account.feed.epoch,
                    }
                )
            out["files"] = [self.resource(f, user.id) for f in page_files]
            return out

    def get_file(self, user: User, file_id: str) -> dict[str, Any]:
        with self.world.lock:
            return self.resource(self.resolve(user, file_id), user.id)

    def media(self, user: User, file_id: str) -> tuple[bytes, str]:
        """`files.get(alt=media)`: the bytes of a binary file and their type."""
        with self.world.lock:
            f = self.resolve(user, file_id)
            if not f.binary:
                raise ApiError(
                    403,
                    "fileNotDownloadable",
                    "Only files with binary content can be downloaded. Use Export with Docs Editors files.",
                    location="alt",
                    locationType="parameter",
                )
            return f.content, f.mime_type

    def export(self, user: User, file_id: str, mime_type: str) -> bytes:
        with self.world.lock:
            f = self.resolve(user, file_id)
            offered = EXPORTS.get(f.mime_type)
            if offered is None:
                raise ApiError(403, "fileNotExportable", "Export only supports Docs Editors files.")
            if mime_type != offered:
                raise bad_request("The requested conversion is not supported.", reason="badRequest")
            if len(f.content) > EXPORT_SIZE_LIMIT:
                raise ApiError(403, "exportSizeLimitExceeded", "This file is too large to be exported.")
            return f.content

    def export_text(self, f: DriveFile) -> str:
        return f.content.decode("utf-8")

    # -- files: writes ------------------------------------------------------------------------------------

    def create_file(
        self, user: User, body: dict[str, Any], media: tuple[bytes, str] | None = None
    ) -> dict[str, Any]:
        """`files.create`: metadata, optionally with content (`media`: bytes and their type)."""
        with self.world.lock:
            account = self.account(user)
            mime_type = body.get("mimeType") or (media[1] if media else None) or "application/octet-stream"
            name = body.get("name") or "Untitled"
            if not isinstance(name, str) or not isinstance(mime_type, str):
                raise bad_request("Invalid Value")
            parents = body.get("parents") or [account.root_id]
            if not isinstance(parents, list) or not all(isinstance(p, str) for p in parents):
                raise invalid_parameter("parents")
            if len(parents) > 1:
                raise ApiError(403, "cannotAddParent", "Increasing the number of parents is not allowed.")
            parent = self._writable_folder(user, parents[0])
            file_id = body.get("id")
            if file_id is not None and (not isinstance(file_id, str) or file_id in self.files):
                raise ApiError(409, "duplicate", "A file already exists with the provided ID.")
            now = _millis(self.world.now())
            self._serial += 1
            f = DriveFile(
                file_id or new_file_id(),
                name,
                mime_type,
                user.id,
                self._serial,
                now,
                now,
                [parent.id],
                description=body.get("description"),
                starred=bool(body.get("starred", False)),
                last_modifying_user_id=user.id,
                original_filename=body.get("originalFilename") or (name if media else None),
            )
            f.set_content(_stored_content(mime_type, media[0]) if media else b"")
            # A file in a shared folder is shared with the folder's people.
            f.shared_with = dict(parent.shared_with)
            if parent.owner_id != user.id:
                f.shared_with[parent.owner_id] = "writer"
            f.shared_with.pop(user.id, None)
            self.files[f.id] = f
            self._record([(f, set())])
            return self.resource(f, user.id)

    def _writable_folder(self, user: User, folder_id: str) -> DriveFile:
        folder = self.resolve(user, folder_id)
        if not folder.is_folder:
            raise ApiError(403, "cannotAddParent", "The parent is not a folder.")
        if folder.owner_id != user.id and folder.shared_with.get(user.id) != "writer":
            raise insufficient_permissions()
        return folder

    def update_file(
        self,
        user: User,
        file_id: str,
        body: dict[str, Any],
        add_parents: list[str],
        remove_parents: list[str],
        media: tuple[bytes, str] | None = None,
    ) -> dict[str, Any]:
        """`files.update`: rename, describe, star, move (add/removeParents), trash / untrash, new content."""
        with self.world.lock:
            f = self.resolve(user, file_id, write=True)
            if f.is_root:
                raise insufficient_permissions()
            # Everything is checked before anything changes: a refused update changes nothing.
            for name in ("parents", "id", "owners", "createdTime", "size", "md5Checksum"):
                if name in body:
                    raise ApiError(
                        403,
                        "fieldNotWritable",
                        "The resource body includes fields which are not directly writable.",
                    )
            if "mimeType" in body and body["mimeType"] != f.mime_type:
                raise ApiError(403, "fieldNotWritable", "The mimeType of a file cannot be changed.")
            if "name" in body and (not isinstance(body["name"], str) or not body["name"]):
                raise invalid_parameter("name")
            parents = list(f.parents)
            for parent_id in remove_parents:
                parent = self.resolve(user, parent_id)
                if parent.id not in parents:
                    raise bad_request(f"File not found: {parent_id}.", reason="notFound")
                parents.remove(parent.id)
            for parent_id in add_parents:
                parent = self._writable_folder(user, parent_id)
                if parent.id not in parents:
                    parents.append(parent.id)
            if len(parents) > 1:
                raise ApiError(403, "cannotAddParent", "Increasing the number of parents is not allowed.")
            trash = "trashed" in body and bool(body["trashed"]) != f.trashed
            if trash and f.owner_id != user.id:
                raise insufficient_permissions()

            touched: list[tuple[DriveFile, set[str]]] = [(f, f.viewers())]
            now = _millis(self.world.now())
            if "name" in body:
                f.name = body["name"]
            if "description" in body:
                f.description = body["description"]
            if "starred" in body:
                f.starred = bool(body["starred"])
            # A file left without parents goes back to its owner's My Drive.
            f.parents = parents or [self.accounts[f.owner_id].root_id]
            if trash:
                touched = self._set_trashed(f, bool(body["trashed"]), now)
            if media is not None:
                f.set_content(_stored_content(f.mime_type, media[0]))
            f.version += 1
            f.modified = now
            f.last_modifying_user_id = user.id
            self._record(touched)
            return self.resource(f, user.id)

    def _set_trashed(self, top: DriveFile, trashed: bool, now: float) -> list[tuple[DriveFile, set[str]]]:
        """Trash (untrash) a file and what a folder holds; returns each touched file with its viewers."""
        touched = []
        for f in self._subtree(top):
            if f is not top and (f.explicitly_trashed or f.trashed == trashed):
                continue  # what was trashed on its own stays trashed when its folder comes back
            touched.append((f, f.viewers()))
            f.trashed = trashed
            f.explicitly_trashed = trashed and f is top
            f.trashed_time = now if trashed else None
            if f is not top:
                f.version += 1
        return touched

    def delete_file(self, user: User, file_id: str) -> None:
        """`files.delete`: gone for good (a folder with everything in it), `removed` for every viewer."""
        with self.world.lock:
            f = self.resolve(user, file_id, own=True)
            if f.is_root:
                raise insufficient_permissions()
            touched = []
            for g in self._subtree(f):
                touched.append((g, g.viewers()))
                if g.owner_id == user.id:
                    del self.files[g.id]
                else:  # other people's files in a deleted folder stay theirs, without that parent
                    g.parents = [p for p in g.parents if p != f.id and p in self.files]
            self._record(touched)

    def empty_trash(self, user: User) -> None:
        with self.world.lock:
            trashed = [f for f in self.files.values() if f.owner_id == user.id and f.explicitly_trashed]
            for f in trashed:
                if f.id in self.files:
                    self.delete_file(user, f.id)

    # -- changes -----------------------------------------------------------------------------------------

    def _record(self, touched: list[tuple[DriveFile, set[str]]]) -> None:
        """Record each file's change for the users who saw it before or see it now; notify them once."""
        now = self.world.now()
        notified: set[str] = set()
        for f, before in touched:
            after = f.viewers() if f.id in self.files else set()
            if f.is_root:
                continue
            for user_id in before | after:
                account = self.accounts.get(user_id)
                if account is None:
                    continue
                account.changes[f.id] = Change(account.feed.advance(), now, user_id not in after)
                notified.add(user_id)
        for user_id in sorted(notified):
            self.world.channels.notify(CHANGES_WATCH, user_id, state="change")

    def start_page_token(self, user: User) -> dict[str, Any]:
        with self.world.lock:
            return {"kind": "drive#startPageToken", "startPageToken": self.account(user).feed.token()}

    def list_changes(
        self, user: User, page_token: str, page_size: int, include_removed: bool
    ) -> dict[str, Any]:
        with self.world.lock:
            account = self.account(user)
            since = account.feed.position(page_token)
            newest = account.feed.seq
            pending = sorted(
                (c.seq, file_id, c)
                for file_id, c in account.changes.items()
                if c.seq > since and (include_removed or not c.removed)
            )
            page = pending[:page_size]
            out: dict[str, Any] = {"kind": "drive#changeList"}
            if len(pending) > page_size:
                # Google's next page token is a change position like a start page token.
                out["nextPageToken"] = account.feed.token(at=page[-1][0])
            else:
                out["newStartPageToken"] = account.feed.token(at=newest)
            changes = []
            for _, file_id, change in page:
                entry: dict[str, Any] = {
                    "kind": "drive#change",
                    "changeType": "file",
                    "time": rfc3339_millis(change.time),
                    "removed": change.removed,
                    "fileId": file_id,
                }
                f = self.files.get(file_id)
                if not change.removed and f is not None:
                    entry["file"] = self.resource(f, user.id)
                changes.append(entry)
            out["changes"] = changes
            return out

    def changes_watch_target(self, user: User, page_token: str) -> WatchTarget:
        with self.world.lock:
            self.account(user).feed.position(page_token)  # the token must be one the feed honours
            uri = f"{self.world.base_url}/drive/v3/changes?alt=json&pageToken={page_token}"
            return WatchTarget(CHANGES_WATCH, user.id, stable_id(CHANGES_WATCH, user.id), uri)

    def invalidate_page_tokens(self, user_id: str) -> None:
        with self.world.lock:
            account = self.accounts.get(user_id)
            if account is not None:
                account.feed.invalidate()

    # -- truth -------------------------------------------------------------------------------------------

    def truth(self, user: User) -> dict[str, Any]:
        """What the user sees now: every file (trashed included) and each Docs editors file's export."""
        with self.world.lock:
            files = self.visible_files(user)
            return {
                "files": [self.resource(f, user.id) for f in files],
                "exports": {f.id: self.export_text(f) for f in files if f.mime_type in EXPORTS},
            }


def _millis(ts: float) -> float:
    """Times are kept to the millisecond, as Drive reports them (so `q` comparisons agree)."""
    return round(ts * 1000) / 1000


def _stored_content(mime_type: str, data: bytes) -> bytes:
    """What a file keeps of uploaded bytes: a Google Doc converts the text to its export form."""
    if mime_type == DOCUMENT:
        return docs_text_export(data.decode("utf-8", "replace").lstrip("\ufeff"))
    if mime_type in (SPREADSHEET, PRESENTATION):
        return data.decode("utf-8", "replace").encode()
    return data

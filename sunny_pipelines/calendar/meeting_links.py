"""Meeting links in calendar events: find them in text and HTML, recognise the platform, normalise the URL.

Plain functions, standard library only. The normalised URL is what `calendar_events.meeting_url`
stores and what the meetings domain reads, so two users' copies of one meeting must normalise to
the same string, and the string must still be joinable by a bot.

Normalisation rules (every platform): https, lower-case host (``www.`` dropped), no userinfo, no
port, no fragment, no empty path segments (so no trailing slash), percent-encoding canonical
(decoded, then re-encoded with upper-case hex), and a whitelist of query parameters per platform;
every other parameter (``utm_*``, ``uname``, ``_x_zm_*``, ``from``, ``omn``, ``authuser`` ...) is a
tracking or display detail and is dropped. Identifiers keep their case except Meet codes.

- Zoom (``*.zoom.us``, ``*.zoomgov.com``; the host is kept because vanity and regional hosts can
  carry the account's SSO and region): ``/j/<id>`` (also from ``/s/<id>``, ``/wc/join/<id>``,
  ``/wc/<id>/join``, ``/join?confno=<id>`` and ``zoommtg://`` deep links; a host's start link is
  the same meeting and its ``zak`` token must never be stored), ``/w/<id>`` (webinars, keeps
  ``tk``: registered webinars cannot be joined without it) and ``/my/<vanity>``. Keeps ``pwd``.
- Google Meet: ``https://meet.google.com/<abc-defg-hij>`` (also ``/_meet/<code>``) and
  ``/lookup/<name>``; no parameter survives.
- Teams (``teams.microsoft.com``, ``teams.live.com``, ``teams.cloud.microsoft``, government
  clouds): classic ``/l/meetup-join/<thread>/<message>``. The meeting is identified by the thread
  id (``19:meeting_...@thread.v2``) and the message id (``0`` for scheduled meetings, the post for
  channel meetings), so both path segments are kept. ``context`` is not identity but is kept,
  reduced to its ``Tid``/``Oid`` (lower-cased, fixed order), because an anonymous join needs the
  organiser's tenant; it is the organiser's and so the same in every attendee's copy. Links
  behind the new client's ``/v2/#/l/...`` fragment or the ``/dl/launcher`` page are unwrapped.
  Short ``/meet/<id>`` keeps ``p`` (the passcode).
- Webex (``<site>.webex.com``): ``/meet/<room>`` and ``/join/<room>`` (personal rooms),
  ``/<site>/j.php`` and ``/<site>/e.php`` (keep ``MTID``, ``RGID``), ``/wbxmjs/joinservice/...``
  and ``/webappng/sites/...`` (keep ``MTID``, ``siteurl``).

Wrappers are unwrapped first: Outlook safe links (``*.safelinks.protection.outlook.com/?url=``)
and Google redirects (``www.google.com/url?q=``).
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

GOOGLE_MEET = "google_meet"
ZOOM = "zoom"
TEAMS = "teams"
WEBEX = "webex"
# A video conference Google Calendar declares (conferenceData) on a platform we do not know.
# Kept so the event still reads as a video meeting; Attendee cannot join it, the meetings domain
# ignores it.
OTHER = "other"

_ZOOM_DOMAINS = ("zoom.us", "zoomgov.com")
_TEAMS_HOSTS = {
    "teams.microsoft.com",
    "teams.live.com",
    "teams.cloud.microsoft",
    "teams.microsoft.us",
    "gov.teams.microsoft.us",
    "dod.teams.microsoft.us",
}
# Webex sub-domains that are Cisco's own pages, not meeting sites.
_WEBEX_NOT_SITES = {"help", "status", "signin", "web", "cart", "pricing", "apps", "blog", "community"}

_MEET_CODE = re.compile(r"[a-z]{3}-[a-z]{4}-[a-z]{3}")
_ZOOM_ID = re.compile(r"\d{9,12}")  # 9-11 digits in practice; shorter is a truncated or made-up id
_TEAMS_THREAD = re.compile(r"19:[^/]+@thread\.[a-z0-9]+", re.IGNORECASE)
_TRACKING = re.compile(
    r"utm_.*|mc_.*|_hs.*|fbclid|gclid|dclid|gbraid|wbraid|msclkid|yclid|igshid|_ga|_gl|ref|ref_src|from",
    re.IGNORECASE,
)

# A URL in text: an explicit scheme, or a bare known meeting host ("us02web.zoom.us/j/...",
# "meet.google.com/abc-defg-hij"). It stops at whitespace (incl. no-break and zero-width spaces),
# quotes, angle and square brackets, which is where HTML attributes and Outlook's
# "text<url>" plain-text links end.
_URL_CHARS = r"[^\s\u200b-\u200d\ufeff\"'<>\[\]`]+"
_BARE_HOST = (
    r"(?:[a-z0-9-]+\.)*(?:zoom\.us|zoomgov\.com|webex\.com)"
    r"|meet\.google\.com|teams\.microsoft\.com|teams\.live\.com|teams\.cloud\.microsoft"
)
_CANDIDATE = re.compile(
    rf"(?:https?://|zoommtg://|(?<![\w.@/:-])(?=(?:{_BARE_HOST})/)){_URL_CHARS}", re.IGNORECASE
)
_TRAILING = ".,;:!?)]}*'\"…，。；：！？）"
_SCHEME = re.compile(r"[a-z][a-z0-9+.-]*:(?!\d)", re.IGNORECASE)  # "tel:", not "zoom.us:443"
_ENTITY = re.compile(r"&(?:#\d+|#[xX][0-9a-fA-F]+|[A-Za-z][A-Za-z0-9]*);")


@dataclass(frozen=True)
class MeetingLink:
    url: str  # normalised, see the module docstring
    platform: str  # google_meet | zoom | teams | webex (| other, from conferenceData only)


def parse_meeting_url(url: str) -> MeetingLink | None:
    """The meeting a single URL points to (wrappers unwrapped, normalised), or None."""
    return _parse(url, depth=0)


def normalize_meeting_url(url: str) -> str | None:
    """The normalised form of a meeting URL, or None when it is not a meeting link."""
    link = parse_meeting_url(url)
    return link.url if link else None


def find_meeting_links(text: str | None) -> list[MeetingLink]:
    """Every meeting link in free text or HTML, in order of appearance, each once.

    Only URLs count: phone numbers, ``tel:`` links, "Meeting ID"/"Passcode" lines and links that
    are not a meeting (documents, help, downloads, meeting options) are ignored.
    """
    if not text:
        return []
    # Entities first, so href="...&amp;pwd=..." and &quot;-quoted URLs read as the browser sees them.
    # Only terminated entities: html.unescape alone would turn "...&para=1" into "...¶=1".
    text = _ENTITY.sub(lambda m: html.unescape(m.group(0)), text)
    links: list[MeetingLink] = []
    for match in _CANDIDATE.finditer(text):
        link = parse_meeting_url(match.group(0))
        if link and link not in links:
            links.append(link)
    return links


def extract_meeting_link(event: dict[str, Any]) -> MeetingLink | None:
    """The meeting link of a Google Calendar event resource.

    Order, first found wins: ``conferenceData`` video entry points (structured, written by the
    conferencing add-on itself), ``hangoutLink`` (Google's mirror of a Meet conference),
    ``location`` (a single field people paste the join link into), ``description`` (free text that
    can also mention other meetings, forwarded invites or recordings, so it is trusted least; its
    first link wins). ``phone``/``sip``/``more`` entry points are never joinable by a bot.

    A video entry point on an unknown platform is kept as ``other`` only if no field yields a
    known platform: a Zoom/Meet/Teams/Webex link elsewhere in the event is one a bot can join.
    """
    other: MeetingLink | None = None
    conference = event.get("conferenceData") or {}
    for entry in conference.get("entryPoints") or []:
        uri = entry.get("uri")
        if entry.get("entryPointType") != "video" or not isinstance(uri, str):
            continue
        link = parse_meeting_url(uri)
        if link:
            return link
        if other is None:
            other = _other_link(uri)
    hangout = event.get("hangoutLink")
    if isinstance(hangout, str):
        link = parse_meeting_url(hangout)
        if link:
            return link
    for field in ("location", "description"):
        value = event.get(field)
        links = find_meeting_links(value) if isinstance(value, str) else []
        if links:
            return links[0]
    return other


# --- parsing ---------------------------------------------------------------------------------


def _prepared(url: str) -> str:
    url = url.strip().replace("&amp;", "&").rstrip(_TRAILING)
    if not _SCHEME.match(url):
        url = "https://" + url  # a bare host found in text
    return url


def _parse(url: str, depth: int) -> MeetingLink | None:
    if depth > 4:  # a wrapper wrapping itself
        return None
    try:
        parts = urlsplit(_prepared(url))
        host = (parts.hostname or "").rstrip(".")
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    params = parse_qsl(parts.query, keep_blank_values=True)
    segments = [unquote(s) for s in parts.path.split("/") if s]
    if scheme in ("zoommtg", "zoomus") and _param(params, "confno"):
        return _zoom_link("zoom.us", ["j", _param(params, "confno") or ""], params)
    if scheme not in ("http", "https") or not host:
        return None
    host = host.removeprefix("www.")

    inner = _unwrapped(host, parts.path, params)
    if inner is not None:
        return _parse(inner, depth + 1)
    if host == "meet.google.com":
        return _meet_link(segments)
    if any(host == d or host.endswith("." + d) for d in _ZOOM_DOMAINS):
        return _zoom_link(host, segments, params)
    if host in _TEAMS_HOSTS:
        fragment = parts.fragment
        launcher = _param(params, "url") if segments == ["dl", "launcher", "launcher.html"] else None
        if launcher:  # /dl/launcher/launcher.html?url=/_#/l/meetup-join/...
            fragment = launcher.removeprefix("/_").removeprefix("#")
        if fragment.startswith(("/l/", "/meet/")):  # new client: /v2/?meetingjoin=true#/l/meetup-join/...
            return _parse(f"https://{host}{fragment}", depth + 1)
        return _teams_link(host, segments, params)
    if host.endswith(".webex.com"):
        return _webex_link(host, segments, params)
    return None


def _unwrapped(host: str, path: str, params: list[tuple[str, str]]) -> str | None:
    """The target of a redirect wrapper (Outlook safe links, Google's /url), else None."""
    if host.endswith(".safelinks.protection.outlook.com"):
        return _param(params, "url")
    if host == "google.com" and path == "/url":
        return _param(params, "q") or _param(params, "url")
    return None


def _meet_link(segments: list[str]) -> MeetingLink | None:
    if segments[:1] == ["_meet"]:
        segments = segments[1:]
    if len(segments) == 1 and _MEET_CODE.fullmatch(segments[0].lower()):
        return MeetingLink(f"https://meet.google.com/{segments[0].lower()}", GOOGLE_MEET)
    if len(segments) == 2 and segments[0] == "lookup" and segments[1]:
        return MeetingLink(f"https://meet.google.com/lookup/{_quoted(segments[1])}", GOOGLE_MEET)
    return None


def _zoom_link(host: str, segments: list[str], params: list[tuple[str, str]]) -> MeetingLink | None:
    kind, ident = "", ""
    if len(segments) == 2 and segments[0] in ("j", "s", "w", "my"):
        kind, ident = segments
    elif segments[:2] == ["wc", "join"] and len(segments) == 3:
        kind, ident = "j", segments[2]
    elif len(segments) == 3 and segments[0] == "wc" and segments[2] == "join":
        kind, ident = "j", segments[1]
    elif segments == ["join"]:
        kind, ident = "j", _param(params, "confno") or ""
    if kind == "s":
        kind = "j"  # the host's start link; the participants' join link is the same meeting
    if kind in ("j", "w") and not _ZOOM_ID.fullmatch(ident):
        return None
    if kind == "my" and not re.fullmatch(r"[\w.-]+", ident):
        return None
    if not kind:
        return None  # /u/ (invite others), /download, /meeting/register, /signin, support pages...
    kept = ("pwd", "tk") if kind == "w" else ("pwd",)
    return MeetingLink(f"https://{host}/{kind}/{ident}{_query(params, kept)}", ZOOM)


def _teams_link(host: str, segments: list[str], params: list[tuple[str, str]]) -> MeetingLink | None:
    if segments[:2] == ["l", "meetup-join"] and len(segments) in (3, 4):
        thread = segments[2]
        message = segments[3] if len(segments) == 4 else "0"
        if not _TEAMS_THREAD.fullmatch(thread) or not message.isdigit():
            return None
        context = _teams_context(_param(params, "context"))
        query = f"?context={quote(context, safe='')}" if context else ""
        return MeetingLink(f"https://{host}/l/meetup-join/{_quoted(thread)}/{message}{query}", TEAMS)
    if len(segments) == 2 and segments[0] == "meet" and segments[1].isalnum():
        return MeetingLink(f"https://{host}/meet/{segments[1]}{_query(params, ('p',))}", TEAMS)
    return None


def _teams_context(raw: str | None) -> str | None:
    """``{"Tid":...,"Oid":...}`` in one fixed spelling, or None if the context is unusable."""
    try:
        data = json.loads(raw) if raw else None
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    fields = {k.lower(): v for k, v in data.items() if isinstance(v, str)}
    kept = {key: fields[key.lower()].lower() for key in ("Tid", "Oid") if fields.get(key.lower())}
    return json.dumps(kept, separators=(",", ":")) if "Tid" in kept else None


def _webex_link(host: str, segments: list[str], params: list[tuple[str, str]]) -> MeetingLink | None:
    site = host.removesuffix(".webex.com")
    if not site or site.split(".")[0] in _WEBEX_NOT_SITES:
        return None
    path = "/" + "/".join(_quoted(s) for s in segments)
    if len(segments) == 2 and segments[0] in ("meet", "join") and segments[1]:
        return MeetingLink(f"https://{host}{path}", WEBEX)
    if len(segments) == 2 and segments[1].lower() in ("j.php", "e.php"):
        query = _query(params, ("MTID", "RGID"))
        return MeetingLink(f"https://{host}{path}{query}", WEBEX) if query else None
    if segments[:2] in (["wbxmjs", "joinservice"], ["webappng", "sites"]) and len(segments) > 3:
        return MeetingLink(f"https://{host}{path}{_query(params, ('MTID', 'siteurl'))}", WEBEX)
    return None


def _other_link(uri: str) -> MeetingLink | None:
    """An unknown platform's video URL with the generic rules applied (query kept minus tracking)."""
    try:
        parts = urlsplit(_prepared(uri))
        host = (parts.hostname or "").rstrip(".")
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not host:
        return None
    path = "/".join(_quoted(unquote(s)) for s in parts.path.split("/") if s)
    params = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not _TRACKING.fullmatch(k)]
    query = "&".join(f"{_quoted(k)}={_quoted(v)}" for k, v in params)
    return MeetingLink(f"https://{host}/{path}".rstrip("/") + (f"?{query}" if query else ""), OTHER)


# --- helpers ---------------------------------------------------------------------------------


def _param(params: list[tuple[str, str]], name: str) -> str | None:
    """The first non-empty value of a query parameter; names compare case-insensitively."""
    return next((v for k, v in params if k.lower() == name.lower() and v), None)


def _query(params: list[tuple[str, str]], kept: Iterable[str]) -> str:
    """``?name=value&...`` of the kept parameters (in ``kept``'s order and spelling), or ''."""
    pairs = [(name, _param(params, name)) for name in kept]
    query = "&".join(f"{name}={_quoted(value)}" for name, value in pairs if value)
    return f"?{query}" if query else ""


def _quoted(value: str) -> str:
    # One spelling per character: only RFC 3986 unreserved characters stay literal.
    return quote(value, safe="-._~")

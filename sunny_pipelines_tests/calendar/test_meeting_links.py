"""Meeting link extraction and normalisation: a table of real-shaped invites, links and non-links."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from sunny_pipelines.calendar.meeting_links import (
    MeetingLink,
    extract_meeting_link,
    find_meeting_links,
    normalize_meeting_url,
    parse_meeting_url,
)

THREAD = "19%3ameeting_NjFkZTk0ZDAtMzY0Ni00YjQ5LWI1NDgtZDM1ZTk2MjM0ZmQw%40thread.v2"
TID = "72f988bf-86f1-41af-91ab-2d7cd011db47"
OID = "a1b2c3d4-0000-1111-2222-333344445555"
TEAMS_RAW = (
    f"https://teams.microsoft.com/l/meetup-join/{THREAD}/0"
    f"?context=%7b%22Tid%22%3a%22{TID}%22%2c%22Oid%22%3a%22{OID}%22%7d"
)
TEAMS = (
    "https://teams.microsoft.com/l/meetup-join/"
    "19%3Ameeting_NjFkZTk0ZDAtMzY0Ni00YjQ5LWI1NDgtZDM1ZTk2MjM0ZmQw%40thread.v2/0"
    f"?context=%7B%22Tid%22%3A%22{TID}%22%2C%22Oid%22%3A%22{OID}%22%7D"
)
ZOOM = "https://us02web.zoom.us/j/81234567890?pwd=aBcDeFgHiJkLmNoPqRsTuVwXyZ012345.1"
MTID = "m8a4f2b3c9d0e1f2a3b4c5d6e7f8a9b0c"
WEBEX_J = f"https://acme.webex.com/acme/j.php?MTID={MTID}"

OUTLOOK_TEAMS_HTML = f"""<div style="width:100%"><span style="white-space:nowrap;color:#5F5F5F;opacity:.36;">
________________________________________________________________________________</span></div>
<div class="me-email-text" lang="en-US" style="color:#252424;font-family:'Segoe UI',sans-serif;">
<div style="margin-top:24px;margin-bottom:20px;"><span style="font-size:24px;">Microsoft Teams meeting</span></div>
<div style="margin-bottom:20px;"><div style="font-weight:bold"><span style="font-size:14px;">Join on your
computer, mobile app or room device</span></div>
<a class="me-email-headline" style="font-size:14px;text-decoration:underline;color:#6264a7;"
href="{TEAMS_RAW}" target="_blank" rel="noreferrer noopener">Click here to join the meeting</a></div>
<div style="margin-bottom:4px"><span data-tid="meeting-code">Meeting ID: <span>245 123 456 789</span></span><br>
<span>Passcode: </span><span>a7BcD3</span></div>
<div style="font-size:14px;"><a class="me-email-link" target="_blank"
href="https://www.microsoft.com/en-us/microsoft-teams/download-app" rel="noreferrer noopener">Download Teams</a>
| <a class="me-email-link" target="_blank" href="https://www.microsoft.com/microsoft-teams/join-a-meeting"
rel="noreferrer noopener">Join on the web</a></div>
<div>Or call in (audio only)</div>
<div><a class="me-email-link" href="tel:+12065550100,,123456789#" target="_blank">+1 206-555-0100,,123456789#</a>
United States, Seattle</div>
<div>Phone Conference ID: 123 456 789#</div>
<div><a class="me-email-link" href="https://dialin.teams.microsoft.com/8551f4c1-bea3-441a-8738-69aa517a91c5?id=123456789"
target="_blank">Find a local number</a> | <a class="me-email-link" href="https://dialin.teams.microsoft.com/usp/pstnconferencing"
target="_blank">Reset PIN</a></div>
<div style="margin-bottom:24px;margin-top:20px;"><a class="me-email-link" target="_blank"
href="https://aka.ms/JoinTeamsMeeting?omkt=en-US" rel="noreferrer noopener">Learn More</a> |
<a class="me-email-link" target="_blank" href="https://teams.microsoft.com/meetingOptions/?organizerId={OID}&amp;tenantId={TID}&amp;threadId=19_meeting_NjFk@thread.v2&amp;messageId=0&amp;language=en-US"
rel="noreferrer noopener">Meeting options</a></div></div>
<div style="width:100%"><span style="white-space:nowrap;color:#5F5F5F;opacity:.36;">___________________</span></div>"""  # noqa: E501 (an invite's real lines)

OUTLOOK_TEAMS_OPTIONS_ONLY = OUTLOOK_TEAMS_HTML.replace(TEAMS_RAW, "https://aka.ms/JoinTeamsMeeting")

OUTLOOK_TEAMS_PLAIN = f"""________________________________________________________________________________
Microsoft Teams meeting
Join on your computer, mobile app or room device
Click here to join the meeting<{TEAMS_RAW}>
Meeting ID: 245 123 456 789
Passcode: a7BcD3
Download Teams<https://www.microsoft.com/en-us/microsoft-teams/download-app> | Join on the web<https://www.microsoft.com/microsoft-teams/join-a-meeting>
Learn More<https://aka.ms/JoinTeamsMeeting> | Meeting options<https://teams.microsoft.com/meetingOptions/?organizerId={OID}&tenantId={TID}&threadId=19_meeting_NjFk@thread.v2&messageId=0&language=en-US>
________________________________________________________________________________"""

TEAMS_SHORT_INVITE = """Microsoft Teams Need help?<https://aka.ms/JoinTeamsMeeting?omkt=en-US>
Join the meeting now<https://teams.microsoft.com/meet/24512345678901?p=Xy7bQz3KpL2mN4Rs>
Meeting ID: 245 123 456 789 01
Passcode: aB3cD4
Dial in by phone
+1 323-555-0100,,912345678# United States, Los Angeles
Find a local number<https://dialin.teams.microsoft.com/a1b2c3d4?id=912345678>"""

ZOOM_INVITE = f"""Ada Lovelace is inviting you to a scheduled Zoom meeting.

Topic: Design review
Time: Nov 30, 2026 04:00 PM Paris

Join Zoom Meeting
{ZOOM}

Meeting ID: 812 3456 7890
Passcode: 482913

---

One tap mobile
+16465588656,,81234567890#,,,,*482913# US (New York)
+16699006833,,81234567890#,,,,*482913# US (San Jose)

---

Dial by your location
\u2022 +1 646 558 8656 US (New York)
\u2022 +33 1 7037 9729 France

Meeting ID: 812 3456 7890
Passcode: 482913

Find your local number: https://us02web.zoom.us/u/kdXyZ12AbC

Join by SIP
\u2022 81234567890@zoomcrc.com
"""

ZOOM_ADDON_HTML = (
    "<p>Ada Lovelace is inviting you to a scheduled Zoom meeting.</p><br>Join Zoom Meeting<br>"
    '<a href="https://acme.zoom.us/j/91234567890?pwd=QWERTYuiop123&amp;from=addon" target="_blank">'
    "https://acme.zoom.us/j/91234567890?pwd=QWERTYuiop123&amp;from=addon</a><br><br>"
    "Meeting ID: 912 3456 7890<br>Passcode: 771234<br><br>One tap mobile<br>"
    '<a href="tel:+13462487799,,91234567890#,,,,*771234#">'
    "+13462487799,,91234567890#,,,,*771234#</a> US (Houston)"
)

GOOGLE_WRAPPED_HTML = (
    'Notes: <a href="https://www.google.com/url?q=https://docs.google.com/document/d/1AbCdEf/edit&amp;sa=D'
    '&amp;source=calendar&amp;usg=AOvVaw1">agenda</a><br>Join: <a href="https://www.google.com/url?q='
    "https://acme.zoom.us/j/91234567890?pwd%3DQWERTYuiop123%26uname%3DAda&amp;sa=D&amp;source=calendar"
    '&amp;ust=1700000000000000&amp;usg=AOvVaw0abc" target="_blank">Zoom</a>'
)

WEBEX_INVITE = f"""When it's time, join the Webex meeting here.

Join meeting
{WEBEX_J}

More ways to join:

Join from the meeting link
https://acme.webex.com/acme/j.php?MTID={MTID}&amp;from=calendar

Join by meeting number
Meeting number (access code): 2345 678 9012
Meeting password: Xyz7uvW8

Tap to join from a mobile device (attendees only)
+1-415-655-0001,,23456789012## US Toll

Join from a video system or application
Dial 23456789012@acme.webex.com
You can also dial 173.243.2.68 and enter your meeting number.

Need help? Go to https://help.webex.com
"""

SAFELINK_TEAMS = (
    "https://nam12.safelinks.protection.outlook.com/?url="
    + quote(TEAMS_RAW, safe="")
    + "&data=05%7C02%7Cada%40example.com%7C1b2c%7C72f988bf%7C0%7C0%7C638%7CUnknown&sdata=AbC%3D&reserved=0"
)
SAFELINK_ZOOM = (
    "https://eur01.safelinks.protection.outlook.com/ap/t-59584e83/?url="
    + quote("https://zoom.us/j/5551234567?pwd=TmV3UGFzcw.1", safe="")
    + "&data=05%7C01%7C&sdata=x&reserved=0"
)
TEAMS_LAUNCHER = (
    "https://teams.microsoft.com/dl/launcher/launcher.html?url="
    + quote("/_#/l/meetup-join/" + TEAMS_RAW.split("/l/meetup-join/", 1)[1] + "&anon=true", safe="")
    + "&type=meetup-join&deeplinkId=4a6d2f&directDl=true&msLaunch=true"
)

# (case, text, the first meeting link found as (url, platform), or None)
TEXT_CASES: list[tuple[str, str | None, tuple[str, str] | None]] = [
    # --- plain URLs ---
    ("zoom plain", "https://zoom.us/j/5551234567", ("https://zoom.us/j/5551234567", "zoom")),
    ("zoom regional with pwd", ZOOM, (ZOOM, "zoom")),
    (
        "zoom vanity personal link",
        "https://acme.zoom.us/my/ada.lovelace?pwd=cGFzcw",
        ("https://acme.zoom.us/my/ada.lovelace?pwd=cGFzcw", "zoom"),
    ),
    (
        "zoom tracking params dropped, pwd kept",
        "https://us06web.zoom.us/j/87654321098?pwd=Zm9vYmFy.1&from=addon&uname=Ada%20L&_x_zm_rtaid=abc.123"
        "&_x_zm_rhtaid=456&omn=87654321098&utm_source=newsletter",
        ("https://us06web.zoom.us/j/87654321098?pwd=Zm9vYmFy.1", "zoom"),
    ),
    (
        "zoomgov",
        "https://agency.zoomgov.com/j/1612345678?pwd=R292",
        ("https://agency.zoomgov.com/j/1612345678?pwd=R292", "zoom"),
    ),
    (
        "zoom webinar keeps tk and pwd",
        "https://zoom.us/w/98765432101?tk=T0K3N.DQIAAA&uuid=WN_x&pwd=d2Vi",
        ("https://zoom.us/w/98765432101?pwd=d2Vi&tk=T0K3N.DQIAAA", "zoom"),
    ),
    (
        "zoom start link becomes the join link, zak dropped",
        "https://us02web.zoom.us/s/81234567890?zak=eyJ0eXAiOiJKV1Qi.secret",
        ("https://us02web.zoom.us/j/81234567890", "zoom"),
    ),
    (
        "zoom web client",
        "https://zoom.us/wc/join/5551234567?pwd=abc",
        ("https://zoom.us/j/5551234567?pwd=abc", "zoom"),
    ),
    (
        "zoom desktop deep link",
        "zoommtg://zoom.us/join?action=join&confno=5551234567&pwd=abc",
        ("https://zoom.us/j/5551234567?pwd=abc", "zoom"),
    ),
    (
        "upper-case scheme and host, default port",
        "HTTPS://US02WEB.ZOOM.US:443/j/81234567890?pwd=AbC",
        ("https://us02web.zoom.us/j/81234567890?pwd=AbC", "zoom"),
    ),
    (
        "http upgraded, www dropped, trailing slash and fragment",
        "http://www.zoom.us/j/5551234567/#success",
        ("https://zoom.us/j/5551234567", "zoom"),
    ),
    ("trailing full stop", "Join at https://zoom.us/j/5551234567.", ("https://zoom.us/j/5551234567", "zoom")),
    (
        "in parentheses and markdown",
        "Call ([Zoom](https://zoom.us/j/5551234567?pwd=x1)).",
        ("https://zoom.us/j/5551234567?pwd=x1", "zoom"),
    ),
    (
        "bare host in a location",
        "Room 4 / us02web.zoom.us/j/81234567890",
        ("https://us02web.zoom.us/j/81234567890", "zoom"),
    ),
    (
        "meet with authuser and hs",
        "https://meet.google.com/abc-defg-hij?authuser=1&hs=122",
        ("https://meet.google.com/abc-defg-hij", "google_meet"),
    ),
    (
        "meet upper-case",
        "HTTPS://MEET.GOOGLE.COM/ABC-DEFG-HIJ?pli=1",
        ("https://meet.google.com/abc-defg-hij", "google_meet"),
    ),
    (
        "meet bare host",
        "meet.google.com/xyz-abcd-efg",
        ("https://meet.google.com/xyz-abcd-efg", "google_meet"),
    ),
    (
        "meet html description",
        '<p>Video call: <a href="https://meet.google.com/abc-defg-hij?pli=1&amp;authuser=2">'
        "meet.google.com/abc-defg-hij</a></p>",
        ("https://meet.google.com/abc-defg-hij", "google_meet"),
    ),
    ("teams classic", TEAMS_RAW, (TEAMS, "teams")),
    (
        "teams classic, extra parameters dropped",
        TEAMS_RAW + "&anon=true&deeplinkId=4a6d2f",
        (TEAMS, "teams"),
    ),
    (
        "teams channel meeting keeps its message id",
        "https://teams.microsoft.com/l/meetup-join/19%3a8b1f20cd%40thread.tacv2/1612345678901"
        f"?context=%7b%22Tid%22%3a%22{TID}%22%7d",
        (
            "https://teams.microsoft.com/l/meetup-join/19%3A8b1f20cd%40thread.tacv2/1612345678901"
            f"?context=%7B%22Tid%22%3A%22{TID}%22%7D",
            "teams",
        ),
    ),
    (
        "teams short link keeps p",
        "https://teams.microsoft.com/meet/24512345678901?p=Xy7bQz3KpL2mN4Rs&utm_medium=email",
        ("https://teams.microsoft.com/meet/24512345678901?p=Xy7bQz3KpL2mN4Rs", "teams"),
    ),
    (
        "teams consumer",
        "https://teams.live.com/meet/9312345678901?p=abcDEF",
        ("https://teams.live.com/meet/9312345678901?p=abcDEF", "teams"),
    ),
    (
        "teams government cloud",
        f"https://gov.teams.microsoft.us/l/meetup-join/{THREAD}/0",
        (
            "https://gov.teams.microsoft.us/l/meetup-join/"
            "19%3Ameeting_NjFkZTk0ZDAtMzY0Ni00YjQ5LWI1NDgtZDM1ZTk2MjM0ZmQw%40thread.v2/0",
            "teams",
        ),
    ),
    ("teams behind the launcher page", TEAMS_LAUNCHER, (TEAMS, "teams")),
    (
        "webex personal room",
        "https://acme.webex.com/meet/jdoe",
        ("https://acme.webex.com/meet/jdoe", "webex"),
    ),
    (
        "webex j.php with tracking",
        f"https://ACME.webex.com/acme/j.php?utm_source=cal&MTID={MTID}",
        (WEBEX_J, "webex"),
    ),
    (
        "webex join service",
        f"https://acme.webex.com/wbxmjs/joinservice/sites/acme/meeting/download/4c5d6e7f?siteurl=acme&MTID={MTID}"
        "&isPopupRequired=true",
        (
            "https://acme.webex.com/wbxmjs/joinservice/sites/acme/meeting/download/4c5d6e7f"
            f"?MTID={MTID}&siteurl=acme",
            "webex",
        ),
    ),
    # --- invitations ---
    ("outlook teams html", OUTLOOK_TEAMS_HTML, (TEAMS, "teams")),
    ("outlook teams plain text", OUTLOOK_TEAMS_PLAIN, (TEAMS, "teams")),
    (
        "teams short invite",
        TEAMS_SHORT_INVITE,
        ("https://teams.microsoft.com/meet/24512345678901?p=Xy7bQz3KpL2mN4Rs", "teams"),
    ),
    ("zoom invitation text", ZOOM_INVITE, (ZOOM, "zoom")),
    (
        "zoom add-on html with &amp;",
        ZOOM_ADDON_HTML,
        ("https://acme.zoom.us/j/91234567890?pwd=QWERTYuiop123", "zoom"),
    ),
    (
        "google.com/url wrapped, after a wrapped doc link",
        GOOGLE_WRAPPED_HTML,
        ("https://acme.zoom.us/j/91234567890?pwd=QWERTYuiop123", "zoom"),
    ),
    ("webex invitation text", WEBEX_INVITE, (WEBEX_J, "webex")),
    ("safelinks-wrapped teams", f'<a href="{SAFELINK_TEAMS}">Join</a>', (TEAMS, "teams")),
    ("safelinks-wrapped zoom", SAFELINK_ZOOM, ("https://zoom.us/j/5551234567?pwd=TmV3UGFzcw.1", "zoom")),
    (
        "first meeting link wins",
        "Agenda https://docs.google.com/document/d/1AbC/edit then https://zoom.us/j/5551234567 "
        "or https://meet.google.com/abc-defg-hij",
        ("https://zoom.us/j/5551234567", "zoom"),
    ),
    (
        "no-break and zero-width spaces end a URL",
        "Join:&nbsp;https://zoom.us/j/5551234567&nbsp;Passcode:\u200b123456",
        ("https://zoom.us/j/5551234567", "zoom"),
    ),
    # --- not meetings ---
    ("phone numbers", "+1 646 558 8656 US (New York)\n+16465588656,,81234567890#,,,,*482913#", None),
    ("tel links", '<a href="tel:+1-786-555-0100;123456789#">+1 786-555-0100</a> PIN: 123 456 789#', None),
    ("google doc", "Agenda: https://docs.google.com/document/d/1AbCdEf/edit?usp=sharing", None),
    (
        "drive file and agenda page",
        "https://drive.google.com/file/d/1x/view https://example.com/agenda.pdf",
        None,
    ),
    ("zoom invite-others link", "Find your local number: https://us02web.zoom.us/u/kdXyZ12AbC", None),
    (
        "zoom download and help",
        "https://zoom.us/download https://support.zoom.us/hc/en-us/articles/201362193",
        None,
    ),
    ("zoom registration page", "Register: https://zoom.us/meeting/register/tJYtcOmrqz8", None),
    ("zoom truncated id", "https://zoom.us/j/8123...", None),
    ("sip address", "Join by SIP: 81234567890@zoomcrc.com", None),
    ("teams options, download and help only", OUTLOOK_TEAMS_OPTIONS_ONLY, None),
    ("meet landing pages", "https://meet.google.com/new https://meet.google.com/landing", None),
    ("webex help", "Need help? Go to https://help.webex.com/en-us/article/join", None),
    ("webex home", "https://www.webex.com/downloads.html", None),
    ("lookalike host", "https://zoom.us.evil.example/j/5551234567 https://notzoom.us/j/5551234567", None),
    ("teams room name only", "Microsoft Teams Meeting", None),
    ("empty", "", None),
    ("none", None, None),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in TEXT_CASES], ids=[c[0] for c in TEXT_CASES])
def test_first_meeting_link_in_text(text, expected):
    links = find_meeting_links(text)
    assert ((links[0].url, links[0].platform) if links else None) == expected


def test_the_table_is_large():
    assert len(TEXT_CASES) >= 40


POSITIVE = [c for c in TEXT_CASES if c[2] is not None]


@pytest.mark.parametrize("expected", [c[2] for c in POSITIVE], ids=[c[0] for c in POSITIVE])
def test_normalization_is_idempotent(expected):
    url, platform = expected
    assert parse_meeting_url(url) == MeetingLink(url, platform)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (
            "http://US02WEB.zoom.us:443/j/81234567890/?pwd=abc&uname=Ada#success",
            "https://us02web.zoom.us/j/81234567890?pwd=abc",
        ),
        ("https://zoom.us/j/5551234567?pwd=abc%2E1", "https://zoom.us/j/5551234567?pwd=abc.1"),
        ("https://zoom.us/s/5551234567?zak=tok", "https://zoom.us/j/5551234567"),
        ("https://meet.google.com/abc-defg-hij?authuser=1&hs=122", "meet.google.com/ABC-DEFG-HIJ"),
        ("https://meet.google.com/_meet/abc-defg-hij?ijlm=1", "https://meet.google.com/abc-defg-hij/"),
        (
            TEAMS_RAW,
            # other hex case, ':' and '@' unencoded, keys reordered, GUIDs upper-cased, extra keys
            "https://teams.microsoft.com/l/meetup-join/19:meeting_NjFkZTk0ZDAtMzY0Ni00YjQ5LWI1NDgtZDM1ZTk2MjM0ZmQw"
            f"@thread.v2/0?context=%7B%22Oid%22%3A%22{OID.upper()}%22%2C%22Tid%22%3A%22{TID.upper()}%22"
            "%2C%22IsBroadcastMeeting%22%3Afalse%7D&anon=true",
        ),
        (TEAMS_RAW, SAFELINK_TEAMS),
        (
            TEAMS_RAW,
            "https://teams.microsoft.com/v2/?meetingjoin=true#/l/meetup-join/"
            + TEAMS_RAW.split("/l/meetup-join/", 1)[1],
        ),
        (
            "https://acme.zoom.us/j/91234567890?pwd=QWERTYuiop123",
            "https://www.google.com/url?q=https://acme.zoom.us/j/91234567890?pwd%3DQWERTYuiop123&sa=D&usg=x",
        ),
        (
            f"https://acme.webex.com/acme/j.php?MTID={MTID}",
            f"https://acme.webex.com/acme/j.php?from=x&mtid={MTID}&utm_campaign=y",
        ),
        ("https://zoom.us/j/5551234567?pwd=a&amp;uname=b", "https://zoom.us/j/5551234567?pwd=a"),
    ],
)
def test_two_spellings_of_one_meeting_compare_equal(first, second):
    assert normalize_meeting_url(first) is not None
    assert normalize_meeting_url(first) == normalize_meeting_url(second)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("https://zoom.us/j/5551234567?pwd=a", "https://zoom.us/j/5551234567?pwd=b"),
        ("https://zoom.us/j/5551234567", "https://zoom.us/j/5551234568"),
        ("https://meet.google.com/abc-defg-hij", "https://meet.google.com/abc-defg-hik"),
        (
            "https://teams.microsoft.com/l/meetup-join/19%3ameeting_A%40thread.v2/0",
            "https://teams.microsoft.com/l/meetup-join/19%3ameeting_B%40thread.v2/0",
        ),
        ("https://teams.microsoft.com/meet/245123?p=a", "https://teams.microsoft.com/meet/245123?p=b"),
    ],
)
def test_different_meetings_stay_different(first, second):
    assert normalize_meeting_url(first) != normalize_meeting_url(second)


def test_normalize_rejects_non_meetings():
    for url in (
        "tel:+16465588656",
        "mailto:ada@example.com",
        "https://example.com/j/5551234567",
        "not a url",
    ):
        assert normalize_meeting_url(url) is None


def test_every_link_once_in_order():
    text = f"{ZOOM}\n<a href='{ZOOM}&amp;uname=Ada'>{ZOOM}</a> and meet.google.com/abc-defg-hij"
    assert find_meeting_links(text) == [
        MeetingLink(ZOOM, "zoom"),
        MeetingLink("https://meet.google.com/abc-defg-hij", "google_meet"),
    ]


# --- extract_meeting_link: which field wins ---

MEET_CONFERENCE = {
    "entryPoints": [
        {
            "entryPointType": "video",
            "uri": "https://meet.google.com/aaa-bbbb-ccc",
            "label": "meet.google.com/aaa-bbbb-ccc",
        },
        {"entryPointType": "phone", "uri": "tel:+1-786-555-0100", "pin": "123456789"},
        {"entryPointType": "more", "uri": "https://tel.meet/aaa-bbbb-ccc?pin=123456789"},
    ],
    "conferenceSolution": {"key": {"type": "hangoutsMeet"}, "name": "Google Meet"},
    "conferenceId": "aaa-bbbb-ccc",
}


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (
            {
                "conferenceData": MEET_CONFERENCE,
                "hangoutLink": "https://meet.google.com/aaa-bbbb-ccc",
                "location": "https://zoom.us/j/5551234567",
                "description": ZOOM_INVITE,
            },
            MeetingLink("https://meet.google.com/aaa-bbbb-ccc", "google_meet"),
        ),
        (
            {
                "conferenceData": {
                    "entryPoints": [
                        {"entryPointType": "phone", "uri": "tel:+1-646-558-8656"},
                        {"entryPointType": "sip", "uri": "sip:81234567890@zoomcrc.com"},
                        {"entryPointType": "video", "uri": ZOOM + "&from=addon"},
                    ],
                    "conferenceSolution": {"key": {"type": "addOn"}, "name": "Zoom Meeting"},
                },
                "description": "https://meet.google.com/abc-defg-hij",
            },
            MeetingLink(ZOOM, "zoom"),
        ),
        (
            {
                "conferenceData": {
                    "entryPoints": [{"entryPointType": "phone", "uri": "tel:+1-786-555-0100"}]
                },
                "hangoutLink": "https://meet.google.com/aaa-bbbb-ccc?hs=224",
                "location": "https://zoom.us/j/5551234567",
            },
            MeetingLink("https://meet.google.com/aaa-bbbb-ccc", "google_meet"),
        ),
        (
            {"location": "Room 4, https://acme.webex.com/meet/jdoe", "description": ZOOM_INVITE},
            MeetingLink("https://acme.webex.com/meet/jdoe", "webex"),
        ),
        (
            {"location": "Microsoft Teams Meeting", "description": OUTLOOK_TEAMS_HTML},
            MeetingLink(TEAMS, "teams"),
        ),
        (
            {"conferenceData": {"createRequest": {"requestId": "r1", "status": {"statusCode": "pending"}}}},
            None,
        ),
        (
            {
                "conferenceData": {
                    "entryPoints": [
                        {
                            "entryPointType": "video",
                            "uri": "HTTPS://Whereby.com/acme-standup/?utm_source=cal&room=1#x",
                        }
                    ],
                    "conferenceSolution": {"key": {"type": "addOn"}, "name": "Whereby"},
                }
            },
            MeetingLink("https://whereby.com/acme-standup?room=1", "other"),
        ),
        (
            {
                "conferenceData": {
                    "entryPoints": [{"entryPointType": "video", "uri": "https://app.around.co/r/acme"}],
                },
                "description": "Fallback: https://zoom.us/j/5551234567",
            },
            MeetingLink("https://zoom.us/j/5551234567", "zoom"),
        ),
        (
            {"conferenceData": {"entryPoints": [{"entryPointType": "video", "uri": "tel:+15550100"}]}},
            None,
        ),
        ({"location": "Conference room B", "description": "Agenda: https://docs.example.com/x"}, None),
        ({}, None),
    ],
    ids=[
        "conference data first",
        "video entry point, phone and sip ignored",
        "hangoutLink before location",
        "location before description",
        "description when location has no link",
        "pending conference",
        "unknown video platform kept as other",
        "known platform elsewhere beats other",
        "non-http video uri",
        "no meeting",
        "empty event",
    ],
)
def test_extract_meeting_link(event, expected):
    assert extract_meeting_link(event) == expected

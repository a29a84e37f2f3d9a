"""parse_message on real-shaped MIME: the fields processing reads, and the defects of broken mail."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest

from sunny_pipelines.gmail.mime import (
    BODY_TEXT_LIMIT,
    KEPT_HEADERS,
    ParsedMessage,
    decode_gmail_raw,
    html_to_text,
    is_malformed,
    parse_message,
    truncate_words,
)
from sunny_pipelines_tests.gmail.helpers import MAILBOX, all_fixtures, parsed, raw

# fixture -> fields it must parse to (only the fields named)
EXPECTED = {
    "google_invitation.eml": dict(
        sender="alice@acme.example",
        sender_name="Alice Archer",
        to=[MAILBOX],
        subject=f"Invitation: Q4 planning, London @ Mon 30 Nov 2026 10am - 11am (GMT) ({MAILBOX})",
        date=datetime(2026, 11, 20, 9, 15, tzinfo=UTC),
        message_id="<calendar-3f1c2e9a-7b1d-4c55-9a0e-1f2d3c4b5a69@google.com>",
        attachment_names=["invite.ics"],
    ),
    "outlook_teams_invitation.eml": dict(
        sender="bjorn.larsson@contoso.example",
        sender_name="Björn Larsson",  # RFC 2047 in iso-8859-1
        to=[MAILBOX],
        cc=["jane.doe@contoso.example"],
        subject="Weekly sync – Grünwald project",
        message_id="<AM9PR02MB71402B9E4D6A48B1C0D2E3F4A5B6C7@AM9PR02MB7140.eurprd02.prod.outlook.com>",
    ),
    "personal_reply.eml": dict(
        sender="juergen.mueller@example.de",
        sender_name="Jürgen Müller",
        # a quoted display name with an encoded comma is one address, not two
        to=[MAILBOX, "jane.doe@contoso.example"],
        cc=["olivier.lefevre@example.fr"],
        subject="Re: Übergabe der Präsentation ✅",
        date=datetime(2026, 11, 24, 15, 42, 7, tzinfo=UTC),  # sent at +0100
        message_id="<CAH3x5Jk8Lm2Np4Qr6St8Uv0Wx2Yz4Ab6Cd8Ef0Gh2Ij4Kl6M@mail.gmail.com>",
        in_reply_to="<CAF8w2kLp0Qr5Ts7Uv9Wx1Yz3Ab5Cd7Ef9Gh1Ij3Kl5Mn7Op9Q@mail.gmail.com>",
        references=[
            "<CAJx9q7vYzK8pQm3N2tLw5R4s6u7v8w9x0y1z2A3b4C5d6E7f8G@mail.gmail.com>",
            "<CAF8w2kLp0Qr5Ts7Uv9Wx1Yz3Ab5Cd7Ef9Gh1Ij3Kl5Mn7Op9Q@mail.gmail.com>",
        ],
        calendar_parts=[],
    ),
    "newsletter.eml": dict(
        sender="news@mail.brewco.example",
        sender_name="The Weekly Brew",
        subject="☕ Issue #112: three new roasts",
    ),
    "github_notification.eml": dict(
        sender="noreply@github.com",
        to=["sunny@noreply.github.com"],
        cc=[MAILBOX, "ci_activity@noreply.github.com"],
        date=datetime(2026, 11, 26, 16, 20, 45, tzinfo=UTC),  # sent at -0800
    ),
    "html_only.eml": dict(
        sender="reservations@hotel-lumiere.example",
        sender_name="Hôtel Lumière",
        subject="Confirmation de réservation 48213",
    ),
    "unterminated_multipart.eml": dict(attachment_names=["workshop.pdf"]),
}

CLEAN = [
    name
    for name in all_fixtures()
    if not name.startswith("malformed_") and name != "unterminated_multipart.eml"
]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fields(name):
    message = parsed(name)
    for field, expected in EXPECTED[name].items():
        assert getattr(message, field) == expected, field


@pytest.mark.parametrize("name", CLEAN)
def test_well_formed_fixtures_have_no_defects(name):
    message = parsed(name)
    assert message.defects == []
    assert is_malformed(message) is None
    assert message.date is not None and message.date.tzinfo == UTC
    assert message.sender and message.sender == message.sender.lower()


@pytest.mark.parametrize("name", all_fixtures())
def test_crlf_and_lf_line_ends_parse_alike(name):
    """Gmail's raw messages use CRLF; the fixtures are stored with LF."""
    lf = parse_message(raw(name))
    crlf = parse_message(raw(name).replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))
    assert crlf.to_json() == lf.to_json()


def test_google_invitation_keeps_the_duplicated_calendar_once():
    """Google sends the same iCalendar as text/calendar (7bit) and as the base64 invite.ics."""
    message = parsed("google_invitation.eml")
    assert len(message.calendar_parts) == 1
    calendar = message.calendar_parts[0]
    assert calendar.startswith("BEGIN:VCALENDAR") and "METHOD:REQUEST" in calendar
    assert "UID:3k9q2v7h1m4n8p0r5s6t1u2v3w@google.com" in calendar


@pytest.mark.parametrize(
    "name, method",
    [
        ("google_updated_invitation.eml", "REQUEST"),  # text/calendar in base64
        ("google_reply_accepted.eml", "REPLY"),
        ("google_cancellation.eml", "CANCEL"),
        ("outlook_reply_declined.eml", "REPLY"),
        ("outlook_teams_invitation.eml", "REQUEST"),  # quoted-printable, UTF-8
    ],
)
def test_calendar_parts_are_decoded(name, method):
    (calendar,) = parsed(name).calendar_parts
    assert calendar.startswith("BEGIN:VCALENDAR")
    assert f"METHOD:{method}" in calendar
    assert calendar.rstrip().endswith("END:VCALENDAR")


def test_quoted_printable_utf8_calendar_is_decoded_to_text():
    (calendar,) = parsed("outlook_teams_invitation.eml").calendar_parts
    assert "ORGANIZER;CN=Björn Larsson:mailto:Bjorn.Larsson@contoso.example" in calendar
    assert "=C3" not in calendar and "=\n" not in calendar


def test_plain_part_is_preferred_and_normalised():
    message = parsed("personal_reply.eml")
    assert message.body_text.startswith("Hallo Sunny,\n\nanbei die überarbeitete Präsentation – Folie 7")
    assert "> Kannst du mir die Präsentation bis Mittwoch schicken?" in message.body_text
    assert "<div" not in message.body_text


def test_soft_line_breaks_are_joined():
    body = parsed("out_of_office.eml").body_text
    assert "until Monday 7 December with limited access" in body
    assert "(dan.diaz@acme.example)" in body


def test_html_only_body_becomes_text():
    body = parsed("html_only.eml").body_text
    assert body == (
        "Dear guest,\n\nYour booking at the Hôtel Lumière is confirmed.\nArrival: 3 Dec 2026 · Nights: 2"
        "\n\nRoom Deluxe & view\n\nTotal € 412,00\n\nCafé crème included."
    )
    assert "tracking" not in body and "color" not in body and "Booking 48213" not in body


def test_html_to_text_drops_styles_scripts_and_invisible_padding():
    text = html_to_text(
        "<html><head><style>.x{color:red}</style></head><body>"
        "<span>Preview&nbsp;&#847;&zwnj;&nbsp;</span><p>One<br>Two</p><script>alert(1)</script>"
        "<table><tr><td>a</td><td>b</td></tr></table></body></html>"
    )
    assert text == "Preview\nOne\nTwo\n\na b"


def test_newsletter_headers_are_kept():
    headers = parsed("newsletter.eml").headers
    assert headers["list-unsubscribe"] == (
        "<mailto:unsubscribe-Zm9vYmFy@mail.brewco.example?subject=unsubscribe>, "
        "<https://mail.brewco.example/u/Zm9vYmFy>"
    )
    assert headers["list-unsubscribe-post"] == "List-Unsubscribe=One-Click"
    assert headers["precedence"] == "bulk"
    assert headers["list-id"] == "The Weekly Brew <weekly.brewco.example>"
    assert headers["feedback-id"] == "112:weekly:brewco:esp42"
    assert set(headers) <= set(KEPT_HEADERS)
    # headers outside the kept set (DKIM-Signature, Received) are not stored
    assert "dkim-signature" not in headers and "received" not in headers


def test_automated_headers_are_kept():
    assert parsed("github_notification.eml").headers["auto-submitted"] == "auto-generated"
    ooo = parsed("out_of_office.eml").headers
    assert ooo["auto-submitted"] == "auto-replied"
    assert ooo["x-auto-response-suppress"] == "All"


def test_newsletter_body_uses_the_plain_alternative():
    body = parsed("newsletter.eml").body_text
    assert body.startswith("The Weekly Brew — issue #112\n\nThree new single-origin roasts")
    assert "preheader" not in body


# --- broken mail ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, reason",
    [
        ("malformed_boundary_missing.eml", "boundary '----=_Part_4471_1142.1764151200000' never appears"),
        ("malformed_broken_base64.eml", "unreadable body: invalid base64 in the text/plain part"),
        ("malformed_no_headers.eml", "no headers"),
    ],
)
def test_malformed_fixtures(name, reason):
    message = parsed(name)
    assert reason in (is_malformed(message) or "")
    assert any(reason in defect for defect in message.defects)


def test_headers_of_a_message_whose_boundary_never_appears_are_still_read():
    message = parsed("malformed_boundary_missing.eml")
    assert (message.sender, message.subject) == ("billing@vendor.example", "Invoice INV-2026-1142")
    assert message.attachment_names == []


def test_unclosed_multipart_is_odd_but_not_malformed():
    message = parsed("unterminated_multipart.eml")
    assert message.defects == [
        "multipart/mixed boundary 'notes-boundary' is never closed; its parts are read as far as they go"
    ]
    assert is_malformed(message) is None
    assert message.body_text == "Here are my notes from today's workshop. The slides follow."


def _simple(body: bytes, headers: str = "Content-Type: text/plain; charset=utf-8\n") -> bytes:
    return b"From: Ann <ann@example.com>\nSubject: t\n" + headers.encode() + b"\n" + body


@pytest.mark.parametrize(
    "message, defect, malformed",
    [
        (b"", "empty message", True),
        (b"  \r\n\r\n", "empty message", True),
        (b"Subject: no sender\n\nhello\n", "no From header", False),
        (
            _simple(b"aGVsbG8gd29ybGQhI", "Content-Type: text/plain\nContent-Transfer-Encoding: base64\n"),
            "unreadable body: invalid base64 in the text/plain part (truncated: impossible length)",
            True,
        ),
        (
            _simple(b"caf\xe9 au lait", "Content-Type: text/plain; charset=x-unknown-8bit-thing\n"),
            "unknown charset 'x-unknown-8bit-thing' in the text/plain part; read as UTF-8",
            False,
        ),
        (
            _simple(b"caf\xe9 au lait", "Content-Type: text/plain; charset=utf-8\n"),
            "the text/plain part is not valid utf-8; read as cp1252",
            False,
        ),
        (
            _simple(
                b"50% =off today", "Content-Type: text/plain\nContent-Transfer-Encoding: quoted-printable\n"
            ),
            "invalid quoted-printable escape in the text/plain part",
            False,
        ),
        (
            _simple(b"no boundary here\n", "Content-Type: multipart/mixed\n"),
            "multipart without a boundary",
            True,
        ),
        (
            _simple(
                b"--b\nContent-Type: text/calendar\nContent-Transfer-Encoding: base64\n\n%%%%\n--b--\n",
                "Content-Type: multipart/mixed; boundary=b\n",
            ),
            "unreadable calendar part: invalid base64 in the text/calendar part",
            True,
        ),
        (
            _simple(
                b"--b\nContent-Type: text/plain\n\nsee attached\n--b\nContent-Type: application/pdf\n"
                b"Content-Disposition: attachment; filename=a.pdf\n"
                b"Content-Transfer-Encoding: base64\n\n%%%%\n--b--\n",
                "Content-Type: multipart/mixed; boundary=b\n",
            ),
            "invalid base64 in the attachment a.pdf",
            False,  # a broken attachment does not make the email unreadable
        ),
    ],
)
def test_defects(message, defect, malformed):
    result = parse_message(message)
    assert any(defect in found for found in result.defects), result.defects
    assert (is_malformed(result) is not None) is malformed


def test_missing_padding_still_decodes():
    result = parse_message(
        _simple(b"aGVsbG8gd29ybGQ", "Content-Type: text/plain\nContent-Transfer-Encoding: base64\n")
    )
    assert result.body_text == "hello world"
    assert result.defects == []  # common and harmless: not worth an operator's attention


def test_raw_utf8_headers_are_read():
    """SMTPUTF8 mail carries UTF-8 in headers without RFC 2047."""
    result = parse_message("From: Zoë Ödegaard <zoe@example.com>\nSubject: Grüße\n\nhi\n".encode())
    assert (result.sender_name, result.subject, result.body_text) == ("Zoë Ödegaard", "Grüße", "hi")


@pytest.mark.parametrize("name", all_fixtures())
def test_never_raises_on_truncated_or_mangled_input(name):
    data = raw(name)
    for cut in range(0, len(data), max(1, len(data) // 40)):
        parse_message(data[:cut])
        parse_message(data[:cut] + b"\x00\xff\xfe" + data[cut:][::-1])


def test_body_is_capped_on_a_word_boundary():
    words = " ".join(f"word{i}" for i in range(10_000))
    result = parse_message(_simple(words.encode()))
    assert len(result.body_text) <= BODY_TEXT_LIMIT
    assert len(result.body_text) > BODY_TEXT_LIMIT - 20
    assert words.startswith(result.body_text) and words[len(result.body_text)] == " "


@pytest.mark.parametrize(
    "text, limit, expected",
    [
        ("short", 10, "short"),
        ("alpha beta gamma", 12, "alpha beta"),
        ("alpha beta gamma", 10, "alpha beta"),  # the cut falls on a space
        ("abcdefghijklmnop", 5, "abcde"),  # one long word: hard cut
    ],
)
def test_truncate_words(text, limit, expected):
    assert truncate_words(text, limit) == expected


@pytest.mark.parametrize("name", all_fixtures())
def test_json_round_trip(name):
    message = parsed(name)
    stored = json.loads(json.dumps(message.to_json()))
    assert ParsedMessage.from_json(stored) == message


def test_from_json_ignores_keys_it_does_not_know():
    data = parsed("newsletter.eml").to_json() | {"added_later": 1}
    assert ParsedMessage.from_json(data).sender == "news@mail.brewco.example"


def test_decode_gmail_raw():
    data = raw("personal_reply.eml")
    encoded = base64.urlsafe_b64encode(data).decode().rstrip("=")
    assert decode_gmail_raw(encoded) == data

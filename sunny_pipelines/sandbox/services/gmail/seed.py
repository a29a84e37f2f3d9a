"""Gmail seeding: about a month of realistic mail per user, drawn from `ctx.rng` only.

Each mailbox gets conversation threads with replies (Message-ID / In-Reply-To / References), meeting
invitations as Google Calendar sends them (multipart/alternative with text/plain, text/html and a
`text/calendar; method=REQUEST` part, often an `application/ics` attachment too), replies to the
user's own invitations (METHOD:REPLY, "Accepted: ..."), cancellations (METHOD:CANCEL),
newsletters (List-Unsubscribe, List-Id, Precedence: bulk), automated notices (no-reply senders,
Auto-Submitted), one-off plain mails, sometimes spam or a trashed mail, and for some users one
malformed MIME message. Invitations reuse the `iCalUID` of the events the calendar service seeded
for the user as an attendee, so an invitation and its calendar event link up.

Messages are composed as plain strings (no parsing, no `email` objects): seeding 200 users must
take well under a second.
"""

from __future__ import annotations

import base64
import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import TYPE_CHECKING, Any

from sunny_pipelines.sandbox.core.common import base32hex_id, get_zone

if TYPE_CHECKING:
    from sunny_pipelines.sandbox.seed import SeedContext
    from sunny_pipelines.sandbox.services.gmail.store import GmailStore, Mailbox

DAY = 86400
CRLF = "\r\n"
PRODID = "-//Google Inc//Google Calendar 70.9054//EN"

THREAD_SUBJECTS = [
    "Q3 planning doc", "Draft of the {project} launch post", "Hiring plan for next quarter",
    "Feedback on the {project} design", "Offsite logistics", "Customer escalation: {company}",
    "Budget numbers", "Notes from yesterday", "Contract redlines from {company}", "Intro: {name}",
    "Quick question about the {project} API", "Onboarding checklist",
]  # fmt: skip
OPENERS = [
    "Hi {first},\r\n\r\nCould you take a look at this before Thursday? I left a few comments inline.",
    "Hey {first},\r\n\r\nFollowing up on our chat: here is the latest version. Let me know what you think.",
    "Hi {first},\r\n\r\nSharing the numbers we discussed. The main change is in the second tab.",
    "Hello {first},\r\n\r\nAs promised, the summary from the meeting is below. Action items at the end.",
]
REPLIES = [
    "Thanks, looks good to me. One small nit on the timeline, otherwise ship it.",
    "Sounds good. I will update the doc tonight and circle back tomorrow.",
    "Can we push this to next week? I am swamped until Wednesday.",
    "Agreed. Looping in the rest of the team for visibility.",
    "Great, thanks for the quick turnaround!",
]
PLAIN_SUBJECTS = [
    "Lunch on Friday?", "Re: the slides", "Photos from the offsite", "Reference letter",
    "Conference talk proposal", "Your question from the webinar", "Coffee next week?",
]  # fmt: skip
PROJECTS = ["Atlas", "Beacon", "Cobalt", "Drift", "Ember", "Falcon"]
COMPANIES = {"globex.example.net": "Globex", "initech.example.org": "Initech"}
NEWSLETTERS = [
    ("Tech Weekly", "news@techweekly.example.net", "weekly.techweekly.example.net", "CATEGORY_UPDATES"),
    ("Product Digest", "digest@pdigest.example.com", "digest.pdigest.example.com", "CATEGORY_PROMOTIONS"),
    ("Cloud Deals", "offers@clouddeals.example.com", "offers.clouddeals.example.com", "CATEGORY_PROMOTIONS"),
    ("Data Engineering News", "hello@dataeng.example.org", "news.dataeng.example.org", "CATEGORY_UPDATES"),
]  # fmt: skip
AUTOMATED = [
    ("Example Accounts", "no-reply@accounts.example.com", "Security alert: new sign-in on Linux", None),
    ("CI Bot", "noreply@ci.example.dev", "Build failed: main #{n}", None),
    ("Cloud Billing", "billing-noreply@cloud.example.com", "Your invoice for {month} is ready", "Label_1"),
    ("Docs", "no-reply@docs.example.com", "{name} shared a document with you", None),
    ("Travel Desk", "no-reply@travel.example.com", "Your trip confirmation #{n}", "Label_4"),
]  # fmt: skip
SPAM = [
    ("Prize Center", "winner@lottery.example.biz", "You have WON a $1,000 gift card!!!"),
    ("Crypto Gains", "profit@cryptogains.example.biz", "Double your money in 24 hours"),
]


class _Writer:
    """Composes one mailbox's messages (raw RFC 822 text) and stores them."""

    def __init__(
        self,
        ctx: SeedContext,
        store: GmailStore,
        box: Mailbox,
        user: dict[str, Any],
        colleagues: list[dict[str, Any]],
    ) -> None:
        self.ctx = ctx
        self.rng: random.Random = ctx.rng
        self.store = store
        self.box = box
        self.user = user
        self.me_pair = (user["name"], user["email"])
        self.colleagues = colleagues
        self.first = user["name"].split()[0]
        self.tz = get_zone(user["timezone"])
        self.now = ctx.now
        # The calendar's events this user is invited to / organises (their invitations link up).
        self.invited, self.organised = _calendar_events(ctx, user["email"])

    # -- pieces ---------------------------------------------------------------------------------------

    def when(self, days_back: float = 30) -> float:
        return self.now - self.rng.uniform(600, days_back * DAY)

    def msgid(self, domain: str = "mail.gmail.com") -> str:
        return f"<CA{self.rng.getrandbits(96):024x}@{domain}>"

    def boundary(self) -> str:
        return f"000000000000{self.rng.getrandbits(64):016x}"

    @staticmethod
    def addr(name: str, email: str) -> str:
        return f'"{name}" <{email}>' if any(c in name for c in ",.;:@") else f"{name} <{email}>"

    def me(self) -> str:
        return self.addr(self.user["name"], self.user["email"])

    def date(self, ts: float) -> str:
        return format_datetime(datetime.fromtimestamp(ts, self.tz))

    def store_message(
        self,
        headers: list[tuple[str, str]],
        body: str,
        labels: list[str],
        ts: float,
        thread: str | None = None,
    ) -> Any:
        message_id = next(v for k, v in headers if k == "Message-ID")
        raw = (CRLF.join(f"{k}: {v}" for k, v in headers) + CRLF + CRLF + body).encode()
        return self.store.add_message(
            self.box, raw, labels, int(ts * 1000), thread, seeded=(message_id, self.rng.getrandbits(20))
        )

    def inbox_labels(self, category: str = "CATEGORY_PERSONAL", unread: float = 0.4) -> list[str]:
        labels = ["INBOX", category]
        if category == "CATEGORY_PERSONAL" and self.rng.random() < 0.3:
            labels.append("IMPORTANT")
        if self.rng.random() < unread:
            labels.append("UNREAD")
        if self.rng.random() < 0.05:
            labels.append("STARRED")
        return labels

    def text(self, template: str, **extra: str) -> str:
        person = self.rng.choice(self.ctx.externals)[1] if self.ctx.externals else "Sam Lee"
        company = self.rng.choice(list(COMPANIES.values()))
        return template.format(
            project=self.rng.choice(PROJECTS), company=company, name=person, first=self.first, **extra
        )

    def counterpart(self, colleagues: list[dict[str, Any]]) -> tuple[str, str]:
        """(name, email) of someone who writes to the user: a colleague or an external contact."""
        if colleagues and (self.rng.random() < 0.6 or not self.ctx.externals):
            c = self.rng.choice(colleagues)
            return c["name"], c["email"]
        if self.ctx.externals:
            email, name = self.rng.choice(self.ctx.externals)
            return name, email
        return "Sam Lee", "sam.lee@globex.example.net"

    # -- kinds ------------------------------------------------------------------------------------------

    def thread(self, colleagues: list[dict[str, Any]]) -> int:
        name, email = self.counterpart(colleagues)
        subject = self.text(self.rng.choice(THREAD_SUBJECTS))
        ts = self.when(28)
        their_first = name.split()[0]
        refs: list[str] = []
        thread_id = None
        user_starts = self.rng.random() < 0.4
        count = self.rng.randint(2, 4)
        label_extra = self.rng.choice([[], [], ["Label_2"], ["Label_3"]])
        for n in range(count):
            from_user = (n % 2 == 0) == user_starts
            sender, recipient = (self.me(), self.addr(name, email))
            if not from_user:
                sender, recipient = recipient, sender
            domain = "mail.gmail.com" if from_user or email.endswith("example.com") else email.split("@")[1]
            message_id = self.msgid(domain)
            greeting = their_first if from_user else self.first
            text = (
                self.rng.choice(OPENERS).format(first=greeting)
                if n == 0
                else f"{self.rng.choice(REPLIES)}\r\n\r\n{sender.split('<')[0].strip().strip(chr(34))}"
            )
            headers = [
                ("MIME-Version", "1.0"),
                ("Date", self.date(ts)),
                ("Message-ID", message_id),
            ]
            if refs:
                headers += [("In-Reply-To", refs[-1]), ("References", " ".join(refs))]
            headers += [
                ("Subject", subject if n == 0 else f"Re: {subject}"),
                ("From", sender),
                ("To", recipient),
                ("Content-Type", 'text/plain; charset="UTF-8"'),
            ]
            unread = 0.5 if n == count - 1 else 0.05
            labels = ["SENT"] if from_user else self.inbox_labels(unread=unread)
            msg = self.store_message(headers, text + CRLF, labels + label_extra, ts, thread_id)
            thread_id = msg.thread_id
            refs.append(message_id)
            ts = min(ts + self.rng.uniform(600, 2 * DAY), self.now - 60)
        return count

    def plain(self, colleagues: list[dict[str, Any]], labels: list[str] | None = None) -> int:
        name, email = self.counterpart(colleagues)
        ts = self.when()
        headers = [
            ("MIME-Version", "1.0"),
            ("Date", self.date(ts)),
            ("Message-ID", self.msgid(email.split("@")[1])),
            ("Subject", self.rng.choice(PLAIN_SUBJECTS)),
            ("From", self.addr(name, email)),
            ("To", self.me()),
            ("Content-Type", 'text/plain; charset="UTF-8"'),
        ]
        body = f"Hi {self.first},\r\n\r\n{self.rng.choice(REPLIES)}\r\n\r\nBest,\r\n{name}\r\n"
        self.store_message(headers, body, labels or self.inbox_labels(), ts)
        return 1

    def newsletter(self) -> int:
        brand, sender, list_id, category = self.rng.choice(NEWSLETTERS)
        ts = self.when()
        token = base32hex_id(self.rng, 20)
        domain = sender.split("@")[1]
        issue = self.rng.randint(40, 300)
        b = self.boundary()
        headers = [
            ("MIME-Version", "1.0"),
            ("Date", self.date(ts)),
            ("Message-ID", f"<{token}.{issue}@{domain}>"),
            ("Subject", f"{brand} #{issue}: what we are reading this week"),
            ("From", self.addr(brand, sender)),
            ("To", self.user["email"]),
            ("List-Id", f"{brand} <{list_id}>"),
            ("List-Unsubscribe", f"<mailto:unsubscribe@{domain}?subject=unsubscribe-{token}>, <https://{domain}/u/{token}>"),
            ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
            ("Precedence", "bulk"),
            ("Content-Type", f'multipart/alternative; boundary="{b}"'),
        ]  # fmt: skip
        text = (
            f"{brand}, issue {issue}\r\n\r\n1. Five ways to speed up your data pipelines\r\n"
            f"2. Release notes\r\n\r\nUnsubscribe: https://{domain}/u/{token}\r\n"
        )
        html = (
            f"<html><body><h1>{brand}</h1><p>Issue {issue}</p><ul><li>Five ways to speed up your data "
            f'pipelines</li><li>Release notes</li></ul><p><a href="https://{domain}/u/{token}">Unsubscribe</a>'
            "</p></body></html>"
        )
        body = _alternative(b, [("text/plain", text), ("text/html", html)])
        self.store_message(headers, body, self.inbox_labels(category, unread=0.7), ts)
        return 1

    def automated(self) -> int:
        name, sender, subject, label = self.rng.choice(AUTOMATED)
        ts = self.when()
        month = datetime.fromtimestamp(ts, UTC).strftime("%B %Y")
        subject = self.text(subject, n=str(self.rng.randint(1000, 9999)), month=month)
        headers = [
            ("MIME-Version", "1.0"),
            ("Date", self.date(ts)),
            ("Message-ID", f"<{base32hex_id(self.rng, 24)}@{sender.split('@')[1]}>"),
            ("Subject", subject),
            ("From", self.addr(name, sender)),
            ("To", self.user["email"]),
            ("Auto-Submitted", "auto-generated"),
            ("X-Auto-Response-Suppress", "All"),
            ("Content-Type", 'text/plain; charset="UTF-8"'),
        ]
        body = f"{subject}.\r\n\r\nThis is an automated message, please do not reply.\r\n"
        labels = self.inbox_labels("CATEGORY_UPDATES", unread=0.5) + ([label] if label else [])
        self.store_message(headers, body, labels, ts)
        return 1

    def spam(self) -> int:
        name, sender, subject = self.rng.choice(SPAM)
        ts = self.when(20)
        headers = [
            ("MIME-Version", "1.0"),
            ("Date", self.date(ts)),
            ("Message-ID", f"<{base32hex_id(self.rng, 24)}@{sender.split('@')[1]}>"),
            ("Subject", subject),
            ("From", self.addr(name, sender)),
            ("To", self.user["email"]),
            ("Content-Type", 'text/plain; charset="UTF-8"'),
        ]
        self.store_message(headers, "Click here to claim your prize now!\r\n", ["SPAM", "UNREAD"], ts)
        return 1

    def malformed(self) -> int:
        ts = self.when()
        headers = [
            ("MIME-Version", "1.0"),
            ("Date", self.date(ts)),
            ("Message-ID", f"<{base32hex_id(self.rng, 24)}@legacy-mailer.example.org>"),
            ("Subject", "Fwd: scanned documents"),
            ("From", "Legacy Mailer <scanner@legacy-mailer.example.org>"),
            ("To", self.user["email"]),
        ]
        if self.rng.random() < 0.5:
            # A multipart whose boundary never appears in the body.
            headers.append(("Content-Type", 'multipart/mixed; boundary="==never-used-boundary=="'))
            body = "--==some-other-boundary==\r\nContent-Type: text/plain\r\n\r\nSee attached scans.\r\n"
        else:
            # Broken base64.
            headers += [
                ("Content-Type", 'text/plain; charset="UTF-8"'),
                ("Content-Transfer-Encoding", "base64"),
            ]
            body = "U2VlIGF0dGFjaGVkIHNjYW5z!!!not*base64@@\r\n=====\r\n"
        self.store_message(headers, body, ["INBOX", "CATEGORY_UPDATES", "UNREAD"], ts)
        return 1

    # -- calendar mail ------------------------------------------------------------------------------------

    def calendar_mail(
        self,
        method: str,
        event: dict[str, Any],
        sender: tuple[str, str],
        organizer: tuple[str, str],
        attendee: tuple[str, str, str],  # (name, email, PARTSTAT)
        ts: float,
        labels: list[str],
    ) -> int:
        """An invitation (REQUEST), a reply (REPLY) or a cancellation (CANCEL) as Google sends it."""
        summary = event.get("summary") or "Meeting"
        start, end, all_day = _event_times(event)
        when = _human_when(start, end, all_day, self.tz)
        subject = {
            "REQUEST": f"Invitation: {summary} @ {when} ({self.user['email']})",
            "CANCEL": f"Canceled event: {summary} @ {when} ({self.user['email']})",
        }.get(method) or (
            f"{_PARTSTAT_SUBJECT.get(attendee[2], 'Accepted')}: {summary} @ {when} ({organizer[1]})"
        )
        ics = _ics(method, event, start, end, all_day, organizer, attendee, ts)
        sender_addr = self.addr(*sender)
        text = {
            "REQUEST": f"{organizer[0]} has invited you to {summary}.\r\nWhen: {when}\r\n\r\n"
            f"Reply for {self.user['email']}: Yes / No / Maybe\r\n",
            "CANCEL": f"This event has been canceled.\r\n\r\n{summary}\r\nWhen: {when}\r\n",
            "REPLY": f"{attendee[0]} has {_PARTSTAT_TEXT.get(attendee[2], 'accepted')} this invitation."
            f"\r\n\r\n{summary}\r\nWhen: {when}\r\n",
        }[method]  # fmt: skip
        html = f"<html><body><p>{text.replace(CRLF, '<br>')}</p></body></html>"
        inner = self.boundary()
        alternative = _alternative(
            inner,
            [
                ("text/plain", text),
                ("text/html", html),
                (f"text/calendar; method={method}", ics),
            ],
        )
        headers = [
            ("MIME-Version", "1.0"),
            ("Date", self.date(ts)),
            ("Message-ID", self.msgid("google.com")),
            ("Subject", subject),
            ("From", sender_addr),
            ("To", self.me()),
            ("Reply-To", sender_addr),
            ("Sender", "Google Calendar <calendar-notification@google.com>"),
        ]
        if method != "REPLY" and self.rng.random() < 0.75:
            # Google attaches the same iCalendar data as invite.ics.
            outer = self.boundary()
            attachment = base64.encodebytes(ics.encode()).decode().replace("\n", CRLF)
            headers.append(("Content-Type", f'multipart/mixed; boundary="{outer}"'))
            body = (
                f'--{outer}{CRLF}Content-Type: multipart/alternative; boundary="{inner}"{CRLF}{CRLF}'
                f"{alternative}{CRLF}--{outer}{CRLF}"
                f'Content-Type: application/ics; name="invite.ics"{CRLF}'
                f'Content-Disposition: attachment; filename="invite.ics"{CRLF}'
                f"Content-Transfer-Encoding: base64{CRLF}{CRLF}{attachment}{CRLF}--{outer}--{CRLF}"
            )
        else:
            headers.append(("Content-Type", f'multipart/alternative; boundary="{inner}"'))
            body = alternative
        self.store_message(headers, body, labels, ts)
        return 1

    def synthetic_event(self, organizer: tuple[str, str], attendees: list[tuple[str, str]]) -> dict[str, Any]:
        start = datetime.fromtimestamp(self.now, UTC).replace(minute=0, second=0, microsecond=0)
        start += timedelta(days=self.rng.randint(-3, 20), hours=self.rng.randint(-4, 6))
        end = start + timedelta(minutes=self.rng.choice([30, 45, 60]))
        return {
            "summary": self.text(
                self.rng.choice(["Sync: {project}", "{company} check-in", "Planning session"])
            ),
            "iCalUID": f"{base32hex_id(self.rng)}@google.com",
            "start": {"dateTime": start.isoformat().replace("+00:00", "Z")},
            "end": {"dateTime": end.isoformat().replace("+00:00", "Z")},
            "organizer": {"email": organizer[1], "displayName": organizer[0]},
            "attendees": [
                {"email": e, "displayName": n, "responseStatus": "needsAction"} for n, e in attendees
            ],
            "location": "",
            "description": "",
        }


_PARTSTAT_SUBJECT = {"ACCEPTED": "Accepted", "DECLINED": "Declined", "TENTATIVE": "Tentatively Accepted"}
_PARTSTAT_TEXT = {"ACCEPTED": "accepted", "DECLINED": "declined", "TENTATIVE": "tentatively accepted"}
_RESPONSE_TO_PARTSTAT = {
    "accepted": "ACCEPTED",
    "declined": "DECLINED",
    "tentative": "TENTATIVE",
    "needsAction": "NEEDS-ACTION",
}


def _alternative(boundary: str, parts: list[tuple[str, str]]) -> str:
    out = []
    for ctype, text in parts:
        charset = "" if "charset" in ctype else '; charset="UTF-8"'
        out.append(
            f"--{boundary}{CRLF}Content-Type: {ctype}{charset}{CRLF}"
            f"Content-Transfer-Encoding: 7bit{CRLF}{CRLF}{text}{CRLF}"
        )
    return "".join(out) + f"--{boundary}--{CRLF}"


def _event_times(event: dict[str, Any]) -> tuple[datetime, datetime, bool]:
    start, end = event.get("start") or {}, event.get("end") or {}
    if "date" in start:
        s = datetime.fromisoformat(start["date"]).replace(tzinfo=UTC)
        e = datetime.fromisoformat(end.get("date", start["date"])).replace(tzinfo=UTC)
        return s, e, True
    s = datetime.fromisoformat(start["dateTime"].replace("Z", "+00:00"))
    e = datetime.fromisoformat(end.get("dateTime", start["dateTime"]).replace("Z", "+00:00"))
    return s.astimezone(UTC), e.astimezone(UTC), False


def _clock(t: datetime) -> str:
    """Google's short times: 10am, 10:30pm."""
    minutes = f":{t.minute:02d}" if t.minute else ""
    return f"{t.hour % 12 or 12}{minutes}{'am' if t.hour < 12 else 'pm'}"


def _human_when(start: datetime, end: datetime, all_day: bool, tz: Any) -> str:
    """`Thu Dec 10, 2026 10am - 10:45am (GMT)`, as Google's invitation subjects put it."""
    if all_day:
        return f"{start:%a %b} {start.day}, {start.year}"
    s, e = start.astimezone(tz), end.astimezone(tz)
    return f"{s:%a %b} {s.day}, {s.year} {_clock(s)} - {_clock(e)} ({s.tzname()})"


def _ics_text(value: str) -> str:
    return value.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,").replace("\n", "\\n")


def _fold(line: str) -> str:
    """RFC 5545 folding: lines of at most 75 octets, continued with a leading space."""
    if len(line) <= 75:
        return line
    chunks = [line[:75]] + [line[i : i + 74] for i in range(75, len(line), 74)]
    return (CRLF + " ").join(chunks)


def _ics(
    method: str,
    event: dict[str, Any],
    start: datetime,
    end: datetime,
    all_day: bool,
    organizer: tuple[str, str],
    attendee: tuple[str, str, str],
    ts: float,
) -> str:
    stamp = datetime.fromtimestamp(ts, UTC).strftime("%Y%m%dT%H%M%SZ")
    if all_day:
        when = [f"DTSTART;VALUE=DATE:{start:%Y%m%d}", f"DTEND;VALUE=DATE:{end:%Y%m%d}"]
    else:
        when = [f"DTSTART:{start:%Y%m%dT%H%M%SZ}", f"DTEND:{end:%Y%m%dT%H%M%SZ}"]
    rules = [r for r in event.get("recurrence") or [] if r.startswith(("RRULE:", "EXDATE", "RDATE"))]
    lines = [
        "BEGIN:VCALENDAR",
        f"PRODID:{PRODID}",
        "VERSION:2.0",
        "CALSCALE:GREGORIAN",
        f"METHOD:{method}",
        "BEGIN:VEVENT",
        *when,
        *rules,
        f"DTSTAMP:{stamp}",
        f"ORGANIZER;CN={organizer[0]}:mailto:{organizer[1]}",
        f"UID:{event['iCalUID']}",
    ]
    if method == "REPLY":
        lines.append(
            f"ATTENDEE;CUTYPE=INDIVIDUAL;ROLE=REQ-PARTICIPANT;PARTSTAT={attendee[2]};CN={attendee[0]}:mailto:{attendee[1]}"
        )
    else:
        for a in event.get("attendees") or []:
            partstat = (
                "NEEDS-ACTION"
                if method == "REQUEST"
                else _RESPONSE_TO_PARTSTAT.get(a.get("responseStatus", ""), "NEEDS-ACTION")
            )
            if a.get("organizer"):
                partstat = "ACCEPTED"
            cn = a.get("displayName") or a["email"]
            lines.append(
                f"ATTENDEE;CUTYPE=INDIVIDUAL;ROLE={'OPT' if a.get('optional') else 'REQ'}-PARTICIPANT;"
                f"PARTSTAT={partstat};RSVP=TRUE;CN={cn};X-NUM-GUESTS=0:mailto:{a['email']}"
            )  # fmt: skip
    lines += [
        f"CREATED:{stamp}",
        f"DESCRIPTION:{_ics_text(event.get('description') or '')}",
        f"LAST-MODIFIED:{stamp}",
        f"LOCATION:{_ics_text(event.get('location') or '')}",
        f"SEQUENCE:{int(event.get('sequence') or 0) + (1 if method == 'CANCEL' else 0)}",
        f"STATUS:{'CANCELLED' if method == 'CANCEL' else 'CONFIRMED'}",
        f"SUMMARY:{_ics_text(event.get('summary') or '')}",
        "TRANSP:OPAQUE",
        "END:VEVENT",
        "END:VCALENDAR",
    ]
    return CRLF.join(_fold(line) for line in lines) + CRLF


def _calendar_events(ctx: SeedContext, email: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(events the user is invited to, events the user organises with guests) on their primary
    calendar, as the calendar service seeded them; empty without a calendar service."""
    calendar = ctx.world.services.get("calendar")
    store = getattr(calendar, "store", None)
    cal = store.calendars.get(email) if store is not None else None
    if cal is None:
        return [], []
    invited, organised = [], []
    for stored in cal.events.values():
        res = stored.resource
        if res.get("status") == "cancelled" or not res.get("attendees") or not res.get("iCalUID"):
            continue
        if (res.get("organizer") or {}).get("email") == email:
            if any(
                a.get("responseStatus") in ("accepted", "declined", "tentative") for a in res["attendees"][1:]
            ):
                organised.append(res)
        elif any(a.get("email") == email for a in res["attendees"]):
            invited.append(res)
    return invited, organised


def _invitation(w: _Writer) -> int:
    if w.invited:
        event = w.invited.pop(w.rng.randrange(len(w.invited)))
        org = event.get("organizer") or {}
        organizer = (org.get("displayName") or org.get("email", "Organizer"), org.get("email", ""))
    else:
        organizer = w.counterpart(w.colleagues)
        event = w.synthetic_event(organizer, [organizer, w.me_pair])
    attendee = (*w.me_pair, "NEEDS-ACTION")
    labels = w.inbox_labels(unread=0.5)
    # Sent before the meeting starts (and within the seeded month).
    starts = _event_times(event)[0].timestamp()
    sent = max(min(w.when(14), starts - w.rng.uniform(3600, 5 * DAY)), w.now - 30 * DAY)
    return w.calendar_mail("REQUEST", event, organizer, organizer, attendee, sent, labels)


def _reply(w: _Writer) -> int:
    if w.organised:
        event = w.organised.pop(w.rng.randrange(len(w.organised)))
        guests = [a for a in event["attendees"][1:] if a.get("responseStatus") in _RESPONSE_TO_PARTSTAT]
        guest = w.rng.choice(guests)
        name, email = guest.get("displayName") or guest["email"], guest["email"]
        partstat = _RESPONSE_TO_PARTSTAT[guest["responseStatus"]]
    else:
        name, email = w.counterpart(w.colleagues)
        event = w.synthetic_event(w.me_pair, [w.me_pair, (name, email)])
        partstat = w.rng.choice(["ACCEPTED", "ACCEPTED", "DECLINED", "TENTATIVE"])
    if partstat == "NEEDS-ACTION":
        partstat = "ACCEPTED"
    labels = w.inbox_labels(unread=0.3)
    return w.calendar_mail(
        "REPLY", event, (name, email), w.me_pair, (name, email, partstat), w.when(14), labels
    )


def _cancellation(w: _Writer) -> int:
    # A meeting that no longer exists (its event was deleted): a fresh UID.
    organizer = w.counterpart(w.colleagues)
    event = w.synthetic_event(organizer, [organizer, w.me_pair])
    attendee = (*w.me_pair, "NEEDS-ACTION")
    labels = w.inbox_labels(unread=0.5)
    return w.calendar_mail("CANCEL", event, organizer, organizer, attendee, w.when(10), labels)


# kind -> (writer of one message or thread: the number of messages written, weight of the fill)
_KINDS: dict[str, tuple[Any, float]] = {
    "thread": (lambda w: w.thread(w.colleagues), 6),
    "invitation": (_invitation, 3),
    "reply": (_reply, 2),
    "cancellation": (_cancellation, 1),
    "newsletter": (lambda w: w.newsletter(), 4),
    "automated": (lambda w: w.automated(), 4),
    "plain": (lambda w: w.plain(w.colleagues), 3),
    "spam": (lambda w: w.spam(), 0.5),
    "trashed": (lambda w: w.plain(w.colleagues, ["TRASH", "CATEGORY_PERSONAL"]), 0.5),
}
# Every mailbox has one of each of these; the rest is drawn by weight.
_EVERY_MAILBOX = ("thread", "invitation", "reply", "cancellation", "newsletter", "automated", "plain")


def seed_mailboxes(ctx: SeedContext, store: GmailStore, users: list[dict[str, Any]], per_user: int) -> None:
    """Every user's mailbox: about `max(12, per_user // 2)` messages over the last 30 days."""
    target = max(12, per_user // 2)
    names = list(_KINDS)
    weights = [weight for _, weight in _KINDS.values()]
    for i, user in enumerate(users):
        # The calendar seeds teams of five consecutive users; they write to each other.
        team = users[(i // 5) * 5 : (i // 5) * 5 + 5]
        colleagues = [u for u in team if u["id"] != user["id"]]
        box = store.mailbox(ctx.world.get_user(user["id"]))
        writer = _Writer(ctx, store, box, user, colleagues)
        count = sum(_KINDS[name][0](writer) for name in _EVERY_MAILBOX)
        if i % 3 == 1 or ctx.rng.random() < 0.15:
            count += writer.malformed()
        while count < target:
            count += _KINDS[ctx.rng.choices(names, weights)[0]][0](writer)
        store.end_seeding(box)

"""Drive seeding: a realistic My Drive for every seeded user.

Each user gets a few folders ("Projects" with a project folder inside, "Meeting notes", "Contracts",
"Finance"), Google Docs with real-looking text (meeting notes, agendas, proposals, contracts,
reports), Sheets (budgets, pipelines, hiring plans), Slides, PDFs and PNG images (binary content, so
they have `size` and `md5Checksum`), a few trashed files, and a project folder shared with the next
colleague: it and everything in it appear in both drives. About `max(8, per_user // 2)` files each.

Drawing: one value from the world's random stream seeds Drive's own stream, so the services seeded
after Drive get the same data whatever Drive draws.
"""

from __future__ import annotations

import random
import struct
import zlib
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sunny_pipelines.sandbox.services.drive.store import (
    DOCUMENT,
    FOLDER,
    PRESENTATION,
    SPREADSHEET,
    docs_text_export,
)

if TYPE_CHECKING:
    from sunny_pipelines.sandbox.seed import SeedContext
    from sunny_pipelines.sandbox.services.drive.store import DriveStore

DAY = 86400
PROJECTS = ["Atlas", "Beacon", "Cobalt", "Drift", "Ember", "Falcon", "Granite", "Harbor"]
COMPANIES = ["Globex", "Initech", "Umbrella Health", "Stark Logistics", "Wayne Analytics", "Acme Retail"]
TOPICS = [
    "onboarding flow", "pricing page", "data retention", "SSO rollout", "mobile offline mode",
    "usage analytics", "billing migration", "search relevance", "EU data residency", "API rate limits",
]  # fmt: skip
ACTIONS = [
    "share the revised timeline with the team", "follow up with legal on the DPA",
    "draft the launch announcement", "collect feedback from the pilot customers",
    "update the capacity plan", "book the design review", "send the pricing proposal",
    "write the incident postmortem", "confirm the budget with finance", "prepare the demo environment",
]  # fmt: skip
EVERY_DRIVE = ["notes", "pdf", "sheet", "slides", "image", "contract"]
# (kind, weight): what a seeded file is.
KINDS = [
    ("notes", 22), ("agenda", 8), ("proposal", 8), ("contract", 6), ("report", 8),
    ("sheet", 14), ("slides", 10), ("pdf", 12), ("image", 12),
]  # fmt: skip


def seed_drives(ctx: SeedContext, users: list[dict[str, Any]], per_user: int) -> None:
    """Every seeded user's drive (`users`: as `list_users()` shows them)."""
    store: DriveStore = ctx.world.services["drive"].store  # type: ignore[attr-defined]
    rng = random.Random(ctx.rng.getrandbits(64))
    names = [u["name"] for u in users] + [name for _, name in ctx.externals]
    count = max(8, per_user // 2)
    for i, user in enumerate(users):
        colleague = users[(i + 1) % len(users)] if len(users) > 1 else None
        _seed_user(store, rng, ctx.now, user, colleague, names, count)


def _seed_user(
    store: DriveStore,
    rng: random.Random,
    now: float,
    user: dict[str, Any],
    colleague: dict[str, Any] | None,
    names: list[str],
    count: int,
) -> None:
    uid = user["id"]

    def when() -> tuple[float, float]:
        created = now - rng.uniform(2, 120) * DAY
        return created, created + rng.uniform(0, now - created - 3600)

    def folder(name: str, parent: str | None = None, shared: dict[str, str] | None = None) -> str:
        created, _ = when()
        return store.put_file(
            uid, name, FOLDER, parent, created=created, modified=created, shared_with=shared, rng=rng
        ).id

    project = rng.choice(PROJECTS)
    shared = {colleague["id"]: "writer"} if colleague and colleague["id"] != uid else None
    projects = folder("Projects")
    folders = {
        "project": folder(f"Project {project}", projects, shared),
        "notes": folder("Meeting notes"),
        "contracts": folder("Contracts"),
        "finance": folder("Finance"),
    }
    kinds, weights = zip(*KINDS, strict=True)
    for n in range(count):
        # Every drive holds each sort of file; the rest are drawn by weight.
        kind = EVERY_DRIVE[n] if n < len(EVERY_DRIVE) else rng.choices(kinds, weights)[0]
        name, mime_type, content, home = _file(rng, kind, project, user, names, now)
        # The first two files land in the shared project folder, so every drive holds shared work.
        parent = folders["project"] if n < 2 else folders[home] if home else None
        created, modified = when()
        store.put_file(
            uid,
            name,
            mime_type,
            parent,
            content,
            created=created,
            modified=modified,
            shared_with=shared if parent == folders["project"] else None,
            trashed=n == count - 1 or (n >= 2 and rng.random() < 0.1),
            rng=rng,
        )


def _file(
    rng: random.Random, kind: str, project: str, user: dict[str, Any], names: list[str], now: float
) -> tuple[str, str, bytes, str | None]:
    """(name, mimeType, content, home folder key or None for My Drive) of one seeded file."""
    company = rng.choice(COMPANIES)
    topic = rng.choice(TOPICS)
    day = datetime.fromtimestamp(now - rng.uniform(0, 90) * DAY, UTC).date()
    people = rng.sample(names, min(len(names), rng.randint(2, 4)))
    if user["name"] not in people:
        people[0] = user["name"]
    if kind == "notes":
        title = rng.choice([f"{project} weekly sync", f"1:1 {people[0]} / {people[1]}", f"{company} call"])
        lines = [
            f"Meeting notes: {title}",
            f"Date: {day.isoformat()}",
            f"Attendees: {', '.join(people)}",
            "",
            "Discussion",
            f"- Status of the {topic} work: on track, one open risk around staffing.",
            f"- {rng.choice(people)} raised questions about the {rng.choice(TOPICS)} dependency.",
            f"- Agreed to revisit scope for {project} after the next customer review.",
            "",
            "Action items",
            *(f"- [ ] {rng.choice(people)}: {a}" for a in rng.sample(ACTIONS, 3)),
        ]
        return f"{title} - notes {day.isoformat()}", DOCUMENT, docs_text_export("\n".join(lines)), "notes"
    if kind == "agenda":
        items = rng.sample(TOPICS, 4)
        lines = [
            f"Agenda: {project} planning, {day.strftime('%B %d, %Y')}",
            f"Owner: {user['name']}",
            "",
            *(
                f"{i}. {item.capitalize()} ({rng.choice([10, 15, 20])} min)"
                for i, item in enumerate(items, 1)
            ),
            f"{len(items) + 1}. Open questions and next steps",
        ]
        return f"Agenda - {project} planning", DOCUMENT, docs_text_export("\n".join(lines)), "notes"
    if kind == "proposal":
        lines = [
            f"Proposal: {topic} for {company}",
            f"Prepared by {user['name']}, {day.isoformat()}",
            "",
            "Summary",
            f"{company} asked for a plan to improve their {topic}. We propose a three-phase engagement "
            f"led by the {project} team, starting with a two-week discovery.",
            "",
            "Scope",
            f"Phase 1: discovery and success metrics. Phase 2: implementation of the {topic} changes. "
            "Phase 3: rollout, training and handover.",
            "",
            "Pricing",
            f"Fixed fee of ${rng.randrange(20, 180) * 1000:,}, invoiced per phase.",
        ]
        return f"Proposal - {company} {topic}", DOCUMENT, docs_text_export("\n".join(lines)), None
    if kind == "contract":
        lines = [
            "MASTER SERVICES AGREEMENT",
            "",
            f'This Master Services Agreement (the "Agreement") is entered into on '
            f'{day.strftime("%B %d, %Y")} between Sunny Inc. ("Provider") and {company} ("Customer").',
            "",
            "1. Services. Provider will deliver the services described in each Statement of Work.",
            f"2. Term. The Agreement runs for {rng.choice([12, 24, 36])} months from the effective date.",
            "3. Fees. Customer pays the fees in each Statement of Work within 30 days of invoice.",
            "4. Confidentiality. Each party keeps the other's confidential information secret.",
            "5. Governing law. This Agreement is governed by the laws of the State of Delaware.",
        ]
        return f"MSA - {company}", DOCUMENT, docs_text_export("\n".join(lines)), "contracts"
    if kind == "report":
        quarter = (day.month - 1) // 3 + 1
        lines = [
            f"Q{quarter} {day.year} report: {project}",
            "",
            "Highlights",
            f"- Shipped the {topic} milestone {rng.randint(1, 3)} weeks ahead of plan.",
            f"- Active accounts grew {rng.randint(3, 25)}% quarter over quarter.",
            "",
            "Lowlights",
            f"- Two incidents affected {rng.choice(TOPICS)}; postmortems are linked below.",
            "",
            "Next quarter",
            f"- Focus on {rng.choice(TOPICS)} and on hiring {rng.randint(1, 4)} engineers.",
        ]
        return f"Q{quarter} report - {project}", DOCUMENT, docs_text_export("\n".join(lines)), None
    if kind == "sheet":
        title, rows = _sheet(rng, project, names, day.year)
        csv = "".join(",".join(_csv_cell(c) for c in row) + "\r\n" for row in rows)
        return f"{title} - {project}", SPREADSHEET, csv.encode(), "finance"
    if kind == "slides":
        slides = [
            f"{project}: {topic}",
            f"{user['name']}\n{day.strftime('%B %Y')}",
            f"Why now\n{company} and others asked for better {topic}",
            f"Plan\nDiscovery, build, rollout\nOwner: {rng.choice(people)}",
            "Questions?",
        ]
        return f"{project} - {topic} deck", PRESENTATION, "\n\n".join(slides).encode(), None
    if kind == "pdf":
        label = rng.choice([f"Invoice {rng.randint(1000, 9999)} - {company}", f"Signed NDA - {company}"])
        return f"{label}.pdf", "application/pdf", _pdf(label), "contracts"
    label = rng.choice(["whiteboard", "architecture-sketch", "screenshot", "team-photo"])
    return f"{label}-{day.isoformat()}.png", "image/png", _png(rng), None


def _sheet(rng: random.Random, project: str, names: list[str], year: int) -> tuple[str, list[list[str]]]:
    """A spreadsheet's title and rows: a budget, a sales pipeline or a hiring plan."""
    kind = rng.choice(["budget", "pipeline", "hiring"])
    if kind == "budget":
        rows = [["Category", "Q1", "Q2", "Q3", "Q4"]]
        for category in ("Salaries", "Cloud", "Travel", "Software", "Events"):
            rows.append([category, *(str(rng.randrange(5, 90) * 100) for _ in range(4))])
        return "Budget", rows
    if kind == "pipeline":
        rows = [["Company", "Stage", "Amount", "Owner"]]
        for company in rng.sample(COMPANIES, 4):
            stage = rng.choice(["Lead", "Qualified", "Proposal", "Won", "Lost"])
            rows.append([company, stage, str(rng.randrange(5, 200) * 1000), rng.choice(names)])
        return "Sales pipeline", rows
    rows = [["Role", "Team", "Start", "Status"]]
    for role in ("Backend engineer", "Designer", "Data analyst"):
        status = rng.choice(["Open", "Offer", "Filled"])
        rows.append([role, project, f"{year}-{rng.randint(1, 12):02d}", status])
    return "Hiring plan", rows


def _csv_cell(value: str) -> str:
    return f'"{value}"' if "," in value or '"' in value else value


def _pdf(text: str) -> bytes:
    """A small one-page PDF showing `text`."""
    stream = f"BT /F1 18 Tf 72 720 Td ({text.replace('(', '[').replace(')', ']')}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for i, obj in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (i, obj)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def _png(rng: random.Random, size: int = 16) -> bytes:
    """A small PNG: a random two-colour pattern."""
    a, b = rng.randbytes(3), rng.randbytes(3)
    rows = b"".join(
        b"\x00" + b"".join(a if (x // 4 + y // 4) % 2 else b for x in range(size)) for y in range(size)
    )

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )

"""Benchmark: set-based ``sunny_pipelines.db.upserts.upsert`` vs row-by-row upserts.

    python -m sunny_pipelines_tests.benchmarks.bench_upsert [--rows 5000] [--samples 3]

Both methods write the same ``calendar_events`` rows in two passes, each pass one transaction:

1. **insert pass**: the rows are new;
2. **update pass**: the same keys again with changed values, so that ``ON CONFLICT DO UPDATE``
   really updates every row (checked afterwards).

Row-by-row sends the same ``INSERT ... ON CONFLICT DO UPDATE`` statement (same key, same
updated columns) once per row. A warm-up round of each method comes first and is not counted;
samples alternate which method goes first, and each sample starts from no rows. Prints the rates
(rows/s: median and spread) per method and pass and the ratios of medians, and writes them to
``--json`` (default ``.sunny/bench/upsert-<time>.json``).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Table, delete, func, insert, select
from sqlalchemy.dialects import postgresql

from sunny_pipelines.db.models import CalendarEvent, User
from sunny_pipelines.db.upserts import upsert
from sunny_pipelines.resources.database import DatabaseResource
from sunny_pipelines_tests.benchmarks.common import (
    alternating_orders,
    format_summary,
    fresh_database,
    ratio,
    summarize,
    write_json,
)

METHODS = ("set_based", "row_by_row")
PASSES = ("insert", "update")
KEY = ["user_id", "calendar_id", "event_id"]
USER_ID = "bench-upsert"
TABLE: Table = CalendarEvent.__table__


def event_rows(count: int, version: int) -> list[dict[str, Any]]:
    """``count`` calendar rows as a sync writes them; ``version`` changes every non-key value."""
    base = datetime(2026, 11, 2, 9, tzinfo=UTC)
    response = "accepted" if version == 1 else "declined"
    rows = []
    for i in range(count):
        start = base + timedelta(hours=i % 500, minutes=15 * version)
        rows.append(
            {
                "user_id": USER_ID,
                "calendar_id": "primary" if i % 4 else "team@example.com",
                "event_id": f"ev{i:07d}",
                "ical_uid": f"ev{i:07d}@example.com",
                "status": "confirmed" if version == 1 else "tentative",
                "summary": f"v{version} meeting {i}",
                "description": f"agenda v{version} " + "x" * (i % 200),
                "location": None,
                "start_time": start,
                "end_time": start + timedelta(minutes=30),
                "is_all_day": False,
                "time_zone": "UTC",
                "organizer_email": f"org{i % 50}@example.com",
                "attendees": [
                    {"email": f"a{j}@example.com", "responseStatus": response} for j in range(i % 5)
                ],
                "meeting_url": f"https://meet.example.com/{i}-{version}",
                "meeting_platform": "google_meet",
                "recurring_event_id": None,
                "original_start_time": None,
                "html_link": f"https://calendar.example.com/event?eid={i}",
                "updated": base + timedelta(seconds=version),
                "deleted_at": None,
            }
        )
    return rows


def row_by_row(conn: Connection, table: Table, rows: list[dict[str, Any]], key_columns: list[str]) -> int:
    """The same upsert statement as the set-based one, executed once per row."""
    stmt = postgresql.insert(table)
    updates = {c: stmt.excluded[c] for c in rows[0] if c not in key_columns}
    if "updated_at" in table.c:
        updates["updated_at"] = func.now()
    stmt = stmt.on_conflict_do_update(index_elements=key_columns, set_=updates)
    for row in rows:
        conn.execute(stmt, row)
    return len(rows)


def set_based(conn: Connection, table: Table, rows: list[dict[str, Any]], key_columns: list[str]) -> int:
    return upsert(conn, table, rows, key_columns)


WRITERS: dict[str, Callable[[Connection, Table, list[dict[str, Any]], list[str]], int]] = {
    "set_based": set_based,
    "row_by_row": row_by_row,
}


def clear(database: DatabaseResource) -> None:
    with database.begin() as conn:
        conn.execute(delete(CalendarEvent).where(CalendarEvent.user_id == USER_ID))


def updated_rows(database: DatabaseResource) -> int:
    with database.begin() as conn:
        return conn.execute(
            select(func.count())
            .select_from(CalendarEvent)
            .where(CalendarEvent.user_id == USER_ID, CalendarEvent.summary.like("v2 %"))
        ).scalar_one()


def one_round(database: DatabaseResource, method: str, first: list[dict], second: list[dict]) -> dict:
    """Insert pass then update pass with ``method``, from no rows; rows/s of each pass."""
    clear(database)
    writer = WRITERS[method]
    rates = {}
    for name, rows in (("insert", first), ("update", second)):
        started = time.perf_counter()
        with database.begin() as conn:
            writer(conn, TABLE, rows, KEY)
        rates[name] = len(rows) / (time.perf_counter() - started)
    if updated_rows(database) != len(second):
        raise SystemExit(f"{method}: the update pass did not update every row")
    return rates


def prepare(database: DatabaseResource) -> None:
    with database.begin() as conn:
        conn.execute(
            insert(User.__table__).values(id=USER_ID, email="bench-upsert@example.com", timezone="UTC")
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=5000, help="rows per pass")
    parser.add_argument("--samples", type=int, default=3, help="counted samples per method (>= 3)")
    parser.add_argument("--warmup", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--json", help="where to write the figures (default .sunny/bench/...)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)

    database = DatabaseResource(url=fresh_database())
    prepare(database)
    first, second = event_rows(args.rows, 1), event_rows(args.rows, 2)
    if args.warmup:
        for method in METHODS:
            one_round(database, method, first, second)
    results: dict[str, dict[str, list[float]]] = {m: {p: [] for p in PASSES} for m in METHODS}
    for i, order in enumerate(alternating_orders(METHODS, args.samples)):
        for method in order:
            rates = one_round(database, method, first, second)
            for name in PASSES:
                results[method][name].append(rates[name])
            print(
                f"  sample {i + 1} {method}: insert {rates['insert']:,.0f} rows/s, "
                f"update {rates['update']:,.0f} rows/s",
                flush=True,
            )
    clear(database)

    summaries = {m: {p: summarize(results[m][p]) for p in PASSES} for m in METHODS}
    ratios = {
        p: ratio(summaries["set_based"][p]["median"], summaries["row_by_row"][p]["median"]) for p in PASSES
    }
    print(f"rows per pass: {args.rows}")
    for method in METHODS:
        for name in PASSES:
            print(format_summary(f"{method} {name} pass", summaries[method][name], "rows/s", 0))
    for name in PASSES:
        print(f"ratio of medians set-based / row-by-row, {name} pass: {ratios[name]:.1f}x")
    write_json(
        args.json,
        "upsert",
        {
            "config": {"rows": args.rows, "samples": args.samples, "warmup": args.warmup},
            "rows_per_second": summaries,
            "ratio_of_medians_set_based_over_row_by_row": ratios,
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The suite-wide check that no OAuth token leaks: no access or refresh token, plain or
encrypted, appears in a log record, a Dagster event (run logs, materialization metadata, step
failures), an error or reason column of the database, or the logs of the processes end-to-end
tests start. Registered in the root conftest; every test is checked when it ends, and fails at
teardown naming where a token appeared (by a fingerprint, never the token).

What it knows as tokens, per test:
- every value `TokenCrypto` encrypts or decrypts in the test process, in plain and encrypted
  form (observed: the real cipher runs, the observer only records its inputs and outputs);
- every access and refresh token the test's sandbox issued (`Accounts.issued_tokens`);
- the encrypted tokens stored in `google_connections` when the test ends, and their plain
  values (decrypted with the test's key), which covers tokens refreshed by other processes.
Any Fernet ciphertext (the form of our tokens at rest) is a leak too, whatever its key.

What it reads, per test:
- Python log records (a root handler; `sunny_pipelines` loggers at INFO, the level production
  runs at). The sandbox's own loggers are left out: the emulated Google may print tokens;
- every event stored by any Dagster instance of the test process (Dagster has no public hook
  that sees the events of every instance, so `DagsterInstance.handle_new_event` is observed);
- when the test used the database: every text column whose name says error or reason;
- Dagster homes and process logs that `stack.py` registered (end-to-end tests).

Plain tokens shorter than `MIN_TOKEN_LENGTH` are not looked for: no issuer makes tokens that
short, and test placeholders such as ``"a"`` or ``"at-u1"`` would match ordinary text.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import logging
import os
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import Connection, MetaData, String

MIN_TOKEN_LENGTH = 16
PLAIN = "token"
ENCRYPTED = "encrypted token"
# Fernet: version 0x80, timestamp, IV, ciphertext blocks, HMAC; base64url from "gAAAAA".
# At least 73 bytes (one ciphertext block): 98 characters before padding.
FERNET_SHAPE = re.compile(r"gAAAAA[A-Za-z0-9_-]{92,}={0,2}")
# Loggers whose records are not the product's: the emulated Google knows every token.
FOREIGN_LOGGERS = ("sunny_pipelines.sandbox",)
PRODUCT_LOGGER = "sunny_pipelines"
ERROR_COLUMN = re.compile(r"error|reason")


def fingerprint(token: str) -> str:
    """How a report names a token: enough to tell two apart, useless to use one."""
    return "sha256:" + hashlib.sha256(token.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Leak:
    where: str
    what: str
    fingerprint: str

    def __str__(self) -> str:
        return f"{self.what} {self.fingerprint} in {self.where}"


def is_fernet_token(candidate: str) -> bool:
    """Whether ``candidate`` has the structure of a Fernet ciphertext."""
    try:
        raw = base64.urlsafe_b64decode(candidate + "=" * (-len(candidate) % 4))
    except (binascii.Error, ValueError):
        return False
    return len(raw) >= 73 and raw[0] == 0x80 and (len(raw) - 57) % 16 == 0


def find_leaks(texts: Iterable[tuple[str, str]], tokens: Mapping[str, str]) -> list[Leak]:
    """Every (place, token) where one of ``tokens`` (value -> `PLAIN` or `ENCRYPTED`) or any
    Fernet ciphertext occurs in ``texts`` ((place, text) pairs). One leak per place and token."""
    needles: list[tuple[str, str, str]] = []  # (variant, token, what)
    for token, what in tokens.items():
        if len(token) < MIN_TOKEN_LENGTH:
            continue
        for variant in {token, quote(token, safe="")}:
            needles.append((variant, token, what))
    found: dict[tuple[str, str], Leak] = {}
    for where, text in texts:
        if not text:
            continue
        for variant, token, what in needles:
            if variant in text:
                found.setdefault((where, token), Leak(where, what, fingerprint(token)))
        if "gAAAAA" in text:
            for match in FERNET_SHAPE.finditer(text):
                token = match.group(0)
                if is_fernet_token(token):
                    found.setdefault((where, token), Leak(where, ENCRYPTED, fingerprint(token)))
    return list(found.values())


def error_columns(metadata: MetaData) -> list[tuple[str, str]]:
    """(table, column) of every text column whose name says error or reason."""
    return [
        (table.name, column.name)
        for table in metadata.sorted_tables
        for column in table.columns
        if ERROR_COLUMN.search(column.name) and isinstance(column.type, String)
    ]


_TOKEN_PLACE = "stored token"
_scan_queries: dict[int, str] = {}


def database_scan_query(metadata: MetaData) -> str:
    """One statement reading every non-empty error or reason value (as (place, text) rows)
    and the encrypted tokens `google_connections` holds (place `_TOKEN_PLACE`). Built once."""
    query = _scan_queries.get(id(metadata))
    if query is None:
        parts = [
            f'SELECT \'database {t}.{c}\' AS place, "{c}"::text AS text FROM "{t}" WHERE "{c}" IS NOT NULL'
            for t, c in error_columns(metadata)
        ]
        parts += [
            f"SELECT '{_TOKEN_PLACE}', {c} FROM google_connections WHERE {c} IS NOT NULL"
            for c in ("access_token", "refresh_token")
        ]
        query = _scan_queries[id(metadata)] = " UNION ALL ".join(parts)
    return query


def database_texts(conn: Connection, metadata: MetaData) -> tuple[list[tuple[str, str]], list[str]]:
    """The database's error and reason values as (place, text), and its stored tokens."""
    rows = conn.exec_driver_sql(database_scan_query(metadata)).all()
    texts = [(place, text) for place, text in rows if place != _TOKEN_PLACE]
    return texts, [text for place, text in rows if place == _TOKEN_PLACE]


def dagster_event_text(entry: Any) -> str:
    """An event log entry with every field: message, event data, metadata, errors. (Its repr:
    as complete as its serialized form and ten times cheaper.)"""
    return repr(entry)


def _event_place(entry: Any, prefix: str = "Dagster event") -> str:
    kind = entry.dagster_event.event_type_value if entry.dagster_event else "log message"
    return f"{prefix} {kind} of run {entry.run_id[:8]}"


def dagster_home_texts(home: Path, environ: Mapping[str, str] | None = None) -> list[tuple[str, str]]:
    """Every event and run tag of every run stored in the Dagster home ``home``, opened under
    ``environ`` (the environment it was made for: its dagster.yaml may name variables, such as
    the production instance's DAGSTER_PG_URL, that the test has unset by now)."""
    import dagster as dg

    saved = dict(os.environ)
    os.environ.update(environ or {})
    try:
        with dg.DagsterInstance.from_config(str(home)) as instance:
            texts = []
            for run in instance.get_runs():
                texts.append((f"tags of run {run.run_id[:8]} in {home.name}", repr(dict(run.tags))))
                for entry in instance.all_logs(run.run_id):
                    texts.append(
                        (_event_place(entry, f"{home.name}: Dagster event"), dagster_event_text(entry))
                    )
            return texts
    finally:
        os.environ.clear()
        os.environ.update(saved)


class _Records(logging.Handler):
    def __init__(self, sink: list[logging.LogRecord]) -> None:
        super().__init__(logging.NOTSET)
        self._sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        if not record.name.startswith(FOREIGN_LOGGERS):
            self._sink.append(record)


def _record_text(record: logging.LogRecord) -> str:
    try:
        text = record.getMessage()
    except Exception as exc:  # a malformed log call still shows its parts
        text = f"{record.msg!r} {record.args!r} ({exc})"
    if record.exc_info and not record.exc_text:
        record.exc_text = logging.Formatter().formatException(record.exc_info)
    return f"{text}\n{record.exc_text}" if record.exc_text else text


class TokenWatch:
    """What the current test has logged, stored and issued. One per session."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.tokens: dict[str, str] = {}
        self.records: list[logging.LogRecord] = []
        self.events: list[Any] = []
        self.dagster_homes: list[tuple[Path, dict[str, str]]] = []
        self.log_files: list[Path] = []
        self._handler = _Records(self.records)
        self._product_level = logging.NOTSET

    # -- what is known as a token
    def learn(self, token: str | None, what: str) -> None:
        if token:
            with self._lock:
                self.tokens[token] = what

    def _observe(self, method: Callable, what_in: str, what_out: str) -> Callable:
        watch = self

        def observed(crypto: Any, value: str | None) -> str | None:
            result = method(crypto, value)
            watch.learn(value, what_in)
            watch.learn(result, what_out)
            return result

        return observed

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import dagster as dg

        from sunny_pipelines.db.secrets import TokenCrypto

        monkeypatch.setattr(TokenCrypto, "encrypt", self._observe(TokenCrypto.encrypt, PLAIN, ENCRYPTED))
        monkeypatch.setattr(TokenCrypto, "decrypt", self._observe(TokenCrypto.decrypt, ENCRYPTED, PLAIN))

        handle_new_event = dg.DagsterInstance.handle_new_event
        events = self.events

        def observed_event(instance: Any, event: Any, *args: Any, **kwargs: Any) -> Any:
            events.append(event)
            return handle_new_event(instance, event, *args, **kwargs)

        monkeypatch.setattr(dg.DagsterInstance, "handle_new_event", observed_event)

        logging.getLogger().addHandler(self._handler)
        product = logging.getLogger(PRODUCT_LOGGER)
        self._product_level = product.level
        if product.getEffectiveLevel() > logging.INFO:
            product.setLevel(logging.INFO)

    def uninstall(self) -> None:
        logging.getLogger().removeHandler(self._handler)
        logging.getLogger(PRODUCT_LOGGER).setLevel(self._product_level)

    # -- per test
    def start_test(self) -> None:
        with self._lock:
            self.tokens.clear()
            self.records.clear()
            self.events.clear()
            self.dagster_homes.clear()
            self.log_files.clear()

    def leaks(self, item: pytest.Item) -> list[Leak]:
        """The leaks of the test ``item`` so far (what its teardown checks)."""
        funcargs: dict[str, Any] = getattr(item, "funcargs", None) or {}
        for value in list(funcargs.values()):
            accounts = getattr(getattr(value, "world", None), "accounts", None)
            if hasattr(accounts, "issued_tokens"):
                for token in accounts.issued_tokens():
                    self.learn(token, PLAIN)
        texts: list[tuple[str, str]] = []
        if "database_url" in item.fixturenames and "database_url" in funcargs:
            texts += self._database_texts(funcargs["database_url"], funcargs.get("cipher"))
        texts += [(f"log record {r.name} ({r.levelname})", _record_text(r)) for r in list(self.records)]
        texts += [(_event_place(e), dagster_event_text(e)) for e in list(self.events)]
        for home, environ in self.dagster_homes:
            if home.exists():
                texts += dagster_home_texts(home, environ)
        for path in self.log_files:
            if path.exists():
                texts.append((f"log file {path.name}", path.read_text(errors="replace")))
        with self._lock:
            tokens = dict(self.tokens)
        return find_leaks(texts, tokens)

    def _database_texts(self, url: str, cipher: Any) -> list[tuple[str, str]]:
        from sunny_pipelines.db.engine import get_engine
        from sunny_pipelines.db.models import Base

        with get_engine(url).connect() as conn:
            texts, stored = database_texts(conn, Base.metadata)
            conn.rollback()
        fernet = Fernet(cipher.key.encode()) if getattr(cipher, "key", "") else None
        for value in stored:
            self.learn(value, ENCRYPTED)
            # A value encrypted with another key (a test's own cipher) is known in this form only.
            if fernet is not None:
                with contextlib.suppress(InvalidToken):
                    self.learn(fernet.decrypt(value.encode()).decode(), PLAIN)
        return texts


_watch = TokenWatch()


def watch_dagster_home(home: Path) -> None:
    """Scan this Dagster home's runs when the current test ends (its runs ran elsewhere)."""
    _watch.dagster_homes.append((home, dict(os.environ)))


def watch_log_file(path: Path) -> None:
    """Scan this process log when the current test ends."""
    _watch.log_files.append(path)


@pytest.fixture(scope="session")
def token_watch() -> Iterator[TokenWatch]:
    patch = pytest.MonkeyPatch()
    _watch.install(patch)
    yield _watch
    _watch.uninstall()
    patch.undo()


@pytest.fixture(autouse=True)
def no_token_leaks(request: pytest.FixtureRequest, token_watch: TokenWatch) -> Iterator[None]:
    """Fails the test at teardown when a token appeared where it must not."""
    token_watch.start_test()
    yield
    leaks = token_watch.leaks(request.node)
    token_watch.start_test()
    if leaks:
        found = "; ".join(sorted(str(leak) for leak in leaks))
        pytest.fail(f"token leak: {found} (see sunny_pipelines_tests/token_leaks.py)", pytrace=False)

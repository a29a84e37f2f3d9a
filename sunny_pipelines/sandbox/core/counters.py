"""Counters of the Google API requests the sandbox received, per user and path."""

from __future__ import annotations

import threading
from collections import Counter
from typing import NamedTuple


class RequestKey(NamedTuple):
    email: str | None  # the authenticated user, None when the bearer token was not accepted
    path: str  # percent-decoded request path


class RequestCounters:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[RequestKey] = Counter()

    def count(self, email: str | None, path: str) -> None:
        with self._lock:
            self._counts[RequestKey(email, path)] += 1

    def total(self, email: str | None = None, path_prefix: str | None = None) -> int:
        """Requests received (any outcome), optionally for one user and/or under a decoded path prefix."""
        email = email.strip().lower() if email else None
        with self._lock:
            return sum(
                n
                for key, n in self._counts.items()
                if (email is None or key.email == email)
                and (path_prefix is None or key.path.startswith(path_prefix))
            )

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()

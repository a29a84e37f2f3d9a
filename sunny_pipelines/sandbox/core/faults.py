"""Fault injection: faults queued against the next Google API requests (latency, 429, 5xx).

Faults that take effect at once (revoke a grant, drop access tokens, invalidate sync tokens) are
not queued: `World.inject_fault` hands them to the accounts or to the service that declares them.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from sunny_pipelines.sandbox.core.common import ApiError, backend_error, rate_limit_error

QUEUED_FAULT_KINDS = ("latency", "rate_limit", "server_error")


@dataclass
class Fault:
    kind: str
    user_email: str | None  # None: any user
    remaining: int  # requests it still applies to
    latency_ms: int = 0
    status: int | None = None


class FaultInjector:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def queue(
        self, kind: str, user_email: str | None, count: int, latency_ms: int = 0, status: int | None = None
    ) -> None:
        if kind not in QUEUED_FAULT_KINDS:
            raise ValueError(f"not a queued fault kind: {kind!r}")
        with self._lock:
            self._faults.append(Fault(kind, user_email, max(int(count), 0), int(latency_ms), status))

    def take(self, email: str | None) -> tuple[int, ApiError | None]:
        """Consume the queued faults that apply to one API request: (latency ms, error to answer)."""
        with self._lock:
            latency = 0
            error: ApiError | None = None
            for fault in self._faults:
                if fault.remaining <= 0 or (fault.user_email is not None and fault.user_email != email):
                    continue
                if fault.kind == "latency":
                    latency += fault.latency_ms
                    fault.remaining -= 1
                elif error is None:
                    if fault.kind == "rate_limit":
                        error = rate_limit_error(fault.status or 429)
                    else:
                        error = backend_error(fault.status or 503)
                    fault.remaining -= 1
            self._faults = [f for f in self._faults if f.remaining > 0]
            return latency, error

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

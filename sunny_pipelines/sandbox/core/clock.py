"""The sandbox clock: real time plus a shift, so tokens and channels expire without waiting."""

from __future__ import annotations

import threading
import time
from datetime import datetime

from sunny_pipelines.sandbox.core.common import utc_from_ts


class Clock:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._offset = 0.0
        self.started_at = self.now()

    def now(self) -> float:
        """Seconds since the epoch as the sandbox sees them (real time plus `advance` shifts)."""
        return time.time() + self._offset

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._offset += seconds

    @property
    def anchor(self) -> datetime:
        """Fixed reference for expanding endless series, so instance sets do not drift with time."""
        return utc_from_ts(self.started_at)

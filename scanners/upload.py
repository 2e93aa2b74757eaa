"""Sending the journal to ``POST /v1/taps``: oldest first, in batches, acknowledged after a 200.

Retries: a connection error, timeout, 5xx or 429 is retried with exponential backoff and full
jitter (sleep a random time in ``[0, min(cap, base * 2**attempt)]``; a 429's ``Retry-After`` is
the minimum), at most ``attempts`` tries per batch per call; then the call stops and the rows stay
pending for the next one. A refusal (422 for an invalid record, 401/403/404) is not retried: the
rows stay, the error is kept and shown by ``Reader.status()``, and the call returns.

Nothing is lost or doubled whatever happens between sending and acknowledging: a batch whose 200
never arrived is simply sent again, and the server stores each ``(terminal, seq)`` once.
"""
from __future__ import annotations

import random
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from scanners.journal import Journal
from scanners.local import LocalDB
from scanners.online import ServiceClient, ServiceError

MAX_BATCH = 1000
_ERROR_KEY = "upload.error"


@dataclass
class UploadResult:
    sent: int = 0  # records sent (a retried batch counts once per try that reached the server)
    stored: int = 0
    duplicates: int = 0
    acknowledged: int = 0
    batches: int = 0
    attempts: int = 0
    pending: int = 0
    anomalies: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    online: bool = False  # the server gave an answer other than 5xx/429 at least once


    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with full jitter; ``sleep`` and ``rng`` are injectable for tests."""

    attempts: int = 5
    base_s: float = 0.5
    cap_s: float = 30.0
    sleep: Callable[[float], None] = time.sleep
    rng: Callable[[], float] = random.random

    def delay(self, attempt: int, at_least: float | None = None) -> float:
        ceiling = min(self.cap_s, self.base_s * (2 ** attempt))
        return max(self.rng() * ceiling, min(at_least or 0.0, self.cap_s))


class Uploader:
    def __init__(self, db: LocalDB, journal: Journal, client: ServiceClient, backoff: Backoff, *,
                 timeout: float = 10.0) -> None:
        self.db, self.journal, self.client = db, journal, client
        self.backoff = backoff
        self.timeout = timeout

    def upload(self, batch_size: int = 500, max_batches: int | None = None) -> UploadResult:
        """Send pending records until none are left, a batch fails, or ``max_batches`` were sent."""
        if not 1 <= batch_size <= MAX_BATCH:
            raise ValueError(f"batch_size must be 1..{MAX_BATCH}")
        result = UploadResult()
        while max_batches is None or result.batches < max_batches:
            records = self.journal.pending_batch(batch_size)
            if not records:
                break
            answer = self._send(records, result)
            if answer is None:
                break
            result.batches += 1
            result.stored += int(answer.get("stored", 0))
            result.duplicates += int(answer.get("duplicates", 0))
            result.anomalies += list(answer.get("anomalies") or [])
            result.acknowledged += self.journal.acknowledge(r["seq"] for r in records)
        if result.error is None:
            self.db.put(_ERROR_KEY, None)
        result.pending = self.journal.pending()
        return result

    def _send(self, records: list[dict[str, Any]], result: UploadResult) -> dict[str, Any] | None:
        """The 200 answer for one batch, or None (error recorded) after a refusal or the last try."""
        for attempt in range(self.backoff.attempts):
            result.attempts += 1
            try:
                answer = self.client.taps(records, timeout=self.timeout)
                result.sent += len(records)
                result.online = True
                return answer if isinstance(answer, dict) else {}
            except ServiceError as exc:
                failure = exc
                if exc.status is not None:
                    result.sent += len(records)
                    result.online = result.online or not exc.transient
                if not exc.transient:
                    break
                if attempt + 1 < self.backoff.attempts:
                    self.backoff.sleep(self.backoff.delay(attempt, exc.retry_after))
        self._fail(result, failure, records)
        return None

    def _fail(self, result: UploadResult, exc: ServiceError, records: list[dict[str, Any]]) -> None:
        first, last = records[0]["seq"], records[-1]["seq"]
        result.error = f"{exc.detail} (seq {first}..{last})"
        errors = exc.body.get("errors") if isinstance(exc.body, dict) else None
        self.db.put(_ERROR_KEY, {"error": result.error, "status": exc.status,
                                 "transient": exc.transient, "errors": errors})

    def last_error(self) -> dict[str, Any] | None:
        return self.db.get(_ERROR_KEY)  # type: ignore[no-any-return]

"""What a reader is told (``ReaderOptions``) and what it answers (``ReaderDecision``)."""
from __future__ import annotations

import random
import time
from dataclasses import dataclass, field, fields
from typing import Any, Callable, Literal, Mapping

Mode = Literal["online", "offline"]


class ReaderError(Exception):
    """The reader cannot be enrolled or opened (no network at enrolment, no data dir, another
    terminal's data dir)."""


@dataclass(frozen=True)
class ReaderOptions:
    """Tunables; every one has a default. ``clock``, ``monotonic``, ``sleep`` and ``rng`` are for
    tests."""

    online_timeout_s: float = 0.3  # POST /v1/verify: connect and read timeout each
    offline: bool = False  # decide locally always (a reader without uplink)
    retry_online_after_s: float = 5.0  # after a failed online try, decide offline this long…
    retry_online_max_s: float = 60.0  # …doubling per consecutive failure up to this
    max_trust_age_s: float = 900.0  # older trust material → degraded policy (see scanners.offline)
    max_clock_age_s: float = 86_400.0  # clock not synced for longer → the same
    max_ttl: int | None = None  # longest code lifetime accepted; default: the server's code TTL
    leeway: int | None = None  # clock leeway; default: the server's
    feed_overlap: int = 0  # revocation feed versions re-read on every sync (see scanners.sync)
    journal_keep_acknowledged: int = 100_000  # acknowledged journal rows kept (for inspection)
    sync_timeout_s: float = 5.0
    upload_timeout_s: float = 10.0
    upload_attempts: int = 5  # tries per batch per upload() call
    upload_backoff_s: float = 0.5  # full jitter: sleep U(0, min(cap, base * 2**attempt))
    upload_backoff_cap_s: float = 30.0
    base_url: str | None = None  # Reader.open: talk to another URL than the enrolled one
    clock: Callable[[], float] = time.time
    monotonic: Callable[[], float] = time.monotonic  # the online/offline backoff's clock
    sleep: Callable[[float], None] = time.sleep
    rng: Callable[[], float] = random.random

    @classmethod
    def of(cls, options: Mapping[str, Any]) -> ReaderOptions:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise TypeError(f"unknown reader option(s): {', '.join(unknown)}")
        made = cls(**options)
        if made.online_timeout_s <= 0 or made.upload_attempts < 1 or made.max_trust_age_s <= 0:
            raise ValueError("online_timeout_s and max_trust_age_s must be > 0, upload_attempts >= 1")
        return made


@dataclass(frozen=True)
class ReaderDecision:
    """One scan's answer at the reader, after its journal record was committed (``seq``).

    ``stale``: decided offline on trust material (or a clock) older than the configured limits.
    ``seq`` is None only when the journal could not be written — then the decision is a
    ``degraded`` deny and the gate stays shut.
    """

    decision: str
    reason: str
    message: Mapping[str, str]
    data: Mapping[str, Any]
    seq: int | None
    mode: Mode
    stale: bool
    timings: Mapping[str, float]
    detail: str = ""
    request_id: str | None = None
    fallback: str | None = None  # why an online try ended in an offline decision
    claims: Mapping[str, Any] | None = field(default=None, repr=False)

    @property
    def accepted(self) -> bool:
        return self.decision == "accept"

    def to_dict(self, *, include_claims: bool = False) -> dict[str, Any]:
        body = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "claims"}
        body.update(message=dict(self.message), data=plain_json(self.data), timings=dict(self.timings))
        if include_claims:
            body["claims"] = None if self.claims is None else dict(self.claims)
        return body


def plain_json(value: Any) -> Any:
    """Mappings (also read-only ones) and sequences as plain JSON-able dicts and lists."""
    if isinstance(value, Mapping):
        return {str(k): plain_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_json(v) for v in value]
    return value

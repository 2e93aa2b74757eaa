"""Each simulated terminal's journal of decisions, uploaded to ``POST /v1/taps`` in batches.

Like the reader library (scanners/), a terminal journals every decision — online ones with the
``request_id`` it sent to ``POST /v1/verify``, offline ones as it decided them — with its own
``seq`` from 1, and uploads when a batch is full or its oldest record has waited ``every``
seconds. A claimed batch is held by one uploader at a time, so a terminal's batches never race.
"""
from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass, field
from typing import Any


def claims_of(code: str) -> dict[str, Any]:
    """The (unverified) claims of a code the phone just fetched: ``iss``, ``sub``, ``jti`` …"""
    payload = code.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))  # type: ignore[no-any-return]


def record(seq: int, code: str, decision: str, reason: str, *, mode: str,
           direction: str | None = None, request_id: str | None = None) -> dict[str, Any]:
    """One tap record as API.md's ``POST /v1/taps`` defines it."""
    claims = claims_of(code)
    body: dict[str, Any] = {"seq": seq, "jti": claims["jti"], "sub": claims["sub"],
                            "iss": claims.get("iss", "cc"), "scanned_at": round(time.time(), 3),
                            "decision": decision, "reason": reason, "mode": mode}
    if direction is not None:
        body["direction"] = direction
    if request_id is not None:
        body["request_id"] = request_id
    return body


@dataclass
class _Journal:
    seq: int = 0
    pending: list[dict[str, Any]] = field(default_factory=list)
    oldest: float = 0.0
    busy: bool = False


class Journals:
    """All terminals' journals; ``claim`` hands a due batch to an uploader, ``done`` releases it."""

    def __init__(self, every: float, batch: int) -> None:
        self.every, self.batch = every, batch
        self._by_terminal: dict[str, _Journal] = {}

    def add(self, terminal: str, code: str, decision: str, reason: str, **details: Any) -> None:
        journal = self._by_terminal.setdefault(terminal, _Journal())
        journal.seq += 1
        if not journal.pending:
            journal.oldest = time.monotonic()
        journal.pending.append(record(journal.seq, code, decision, reason, **details))

    def claim(self) -> tuple[str, list[dict[str, Any]]] | None:
        """The terminal and records of one due batch (marked busy), or None."""
        now = time.monotonic()
        for terminal, journal in self._by_terminal.items():
            if journal.pending and not journal.busy and (
                    len(journal.pending) >= self.batch or now - journal.oldest >= self.every):
                records, journal.pending = journal.pending[:self.batch], journal.pending[self.batch:]
                journal.busy, journal.oldest = True, now
                return terminal, records
        return None

    def done(self, terminal: str) -> None:
        self._by_terminal[terminal].busy = False

    def flush_all(self) -> None:
        """At the end of the trace: everything pending is due now."""
        self.every = 0.0

    def empty(self) -> bool:
        return not any(j.pending or j.busy for j in self._by_terminal.values())

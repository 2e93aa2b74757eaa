"""A scan, end to end: the verification core's check, then the policy of the terminal's kind.

Each terminal kind with a policy has a scene (``app.scenes.bus``, ``metro``, ``scenic``), handed
in by the composition root (``app.compose``); a kind without one (hall terminals at /v1/verify)
just claims first use. Every decision is recorded in
the scan-record stream by the Lua script that decides it, or, for a deny decided before any
script, by one XADD (``app.records``): nothing is written to SQL on the scan path. Observers are
in-process hooks (tests, instrumentation) that see every decision after it was made.

A scan is one Redis round trip: the script also compares the trust generation this worker's
state was read at with Redis's. When they differ (a revocation was announced) the script changes
nothing; ``fresh`` catches up with the feed, checks the code again and decides again.

``answer`` is the HTTP view's entry: with a terminal's ``request_id`` a retried scan gets its
first answer back and changes nothing (``app.verification.retries``).
"""
from __future__ import annotations

import logging
import time
from typing import Any, Callable, Iterable, Mapping

from app.codes.decision import Decision
from app.codes.errors import Degraded
from app.records.sink import ScanRecords, TrustMoved
from app.scenes.base import ScanContext, Scene
from app.verification.online import OnlineVerifier
from app.verification.retries import Attempt, RetryMemory, fingerprint

log = logging.getLogger(__name__)

Observer = Callable[[ScanContext, Decision], None]

MAX_TRUST_ROUNDS = 3  # catching up twice in one scan means the feed moves faster than we read


class ScanService:
    """``verifier`` checks, ``records`` records what no scene decides, ``scenes`` by terminal
    kind, ``retries`` remembers answers by ``request_id``; ``clock`` is the scan clock."""

    def __init__(self, verifier: OnlineVerifier, records: ScanRecords, scenes: Iterable[Scene],
                 retries: RetryMemory, observers: list[Observer] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.verifier = verifier
        self.records = records
        self.scenes = {scene.kind: scene for scene in scenes}
        self.observers = list(observers) if observers is not None else []
        self.clock = clock
        self.retries = retries

    def context(self, terminal_id: str, kind: str, site: Mapping[str, str],
                direction: str | None = None) -> ScanContext:
        return ScanContext(terminal_id, kind, site, direction, self.clock())

    def scan(self, code: str, ctx: ScanContext) -> Decision:
        return self.fresh(ctx, code, self.verifier.check(code), lambda checked: self._decide(checked, ctx))

    def answer(self, code: str, ctx: ScanContext, request_id: str | None = None) -> dict[str, Any]:
        """The scan's answer body. With ``request_id``, a retry of the terminal's request gets
        the first body back (``RequestIdReused`` for another request under the same id)."""
        checked = self.verifier.check(code)

        def decide() -> Decision:
            return self.fresh(ctx, code, checked, lambda fresh: self._decide(fresh, ctx))

        if request_id is None:
            return decide().to_dict()
        return self.once(ctx, checked, Attempt(ctx.terminal_id, request_id,
                                               fingerprint("verify", code, ctx.direction)), decide)

    def fresh(self, ctx: ScanContext, code: str, checked: Decision,
              decide: Callable[[Decision], Decision]) -> Decision:
        """``decide(checked)``, its trust state as new as Redis's generation: when a recording
        script answers that the generation moved, catch up with the feed, check the code again
        and decide again. Observers see the final decision."""
        for _ in range(MAX_TRUST_ROUNDS):
            try:
                decision = decide(checked)
                break
            except TrustMoved as moved:
                self.verifier.feed.catch_up(moved.generation, moved.shard)
                checked = self.verifier.check(code)
        else:  # the feed kept moving: answer as if the state store could not be asked
            log.warning("trust generation kept moving; scan not decided", extra={"terminal": ctx.terminal_id})
            decision = Decision.deny("degraded", checked.claims, detail="trust state still changing")
            self.records.unrecorded(ctx, decision, "trust_moving")
        finish = getattr(self.scenes.get(ctx.kind), "finish", None)
        if finish is not None:  # a scene holding something for a scan decided in two steps
            finish(ctx)
        self.observe(ctx, decision)
        return decision

    def once(self, ctx: ScanContext, checked: Decision, attempt: Attempt,
             decide: Callable[[], Decision]) -> dict[str, Any]:
        """``decide()``'s body the first time ``attempt`` is seen, the stored body on a retry.

        ``decide`` must record its decision. Without Redis nothing is decided or recorded: the
        answer is what a scan without ``request_id`` gets then (``degraded`` for a genuine code),
        counted as unrecorded.
        """
        try:
            return self.retries.once(attempt, self.retries.until(checked),
                                     lambda: decide().to_dict())
        except Degraded as down:
            refused = Decision.from_error(down, checked.claims) if checked.accepted else checked
            self.records.unrecorded(ctx, refused, "retry_memory")
            self.observe(ctx, refused)
            return refused.to_dict()

    def _decide(self, checked: Decision, ctx: ScanContext) -> Decision:
        """One recorded decision (one round trip). Raises ``TrustMoved``."""
        if not checked.accepted:
            return self.records.deny(ctx, checked)
        scene = self.scenes.get(ctx.kind)
        if scene is None:
            return self.records.claim(checked, ctx)
        return scene.decide(checked, ctx)

    def observe(self, ctx: ScanContext, decision: Decision) -> None:
        """Tell the in-process observers about a decided (and already recorded) scan."""
        for observe in self.observers:
            try:
                observe(ctx, decision)
            except Exception:  # an observer must never turn a decided scan into an error
                log.exception("scan observer failed", extra={"terminal": ctx.terminal_id})

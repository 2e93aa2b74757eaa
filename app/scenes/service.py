"""A scan, end to end: the verification core's check, then the policy of the terminal's kind.

Each terminal kind with a policy has a scene module exposing ``build(rt) -> Scene``; a kind
without one (hall terminals at /v1/verify) just claims first use. Observers (the audit log)
see every decision, accepts and denies alike.

``answer`` is the HTTP view's entry: with a terminal's ``request_id`` a retried scan gets its
first answer back and changes nothing (``app.verification.retries``).
"""
from __future__ import annotations

import logging
import time
from typing import Any, Callable, Mapping

from app.audit.scans import scan_observer
from app.codes.decision import Decision
from app.codes.errors import Degraded
from app.runtime import Runtime
from app.scenes.base import ScanContext, Scene
from app.verification.retries import Attempt, RetryMemory, fingerprint

log = logging.getLogger(__name__)

Observer = Callable[[ScanContext, Decision], None]


def build_scenes(rt: Runtime) -> dict[str, Scene]:
    from app.scenes import bus, metro, scenic

    built = [module.build(rt) for module in (bus, metro, scenic)]
    return {scene.kind: scene for scene in built}


class ScanService:
    def __init__(self, rt: Runtime, scenes: Mapping[str, Scene] | None = None,
                 observers: list[Observer] | None = None, clock: Callable[[], float] = time.time) -> None:
        self.verifier = rt.verifier
        self.scenes = dict(build_scenes(rt) if scenes is None else scenes)
        self.observers = list(observers) if observers is not None else [scan_observer(rt)]
        self.clock = clock
        settings = rt.settings
        self.retries = RetryMemory(rt.redis, leeway=settings.clock_leeway_seconds,
                                   fallback_seconds=settings.code_ttl_seconds + 2 * settings.clock_leeway_seconds,
                                   wall=self.verifier.core.clock)

    def context(self, terminal_id: str, kind: str, site: Mapping[str, str],
                direction: str | None = None) -> ScanContext:
        return ScanContext(terminal_id, kind, site, direction, self.clock())

    def scan(self, code: str, ctx: ScanContext) -> Decision:
        return self._decide(self.verifier.check(code), ctx)

    def answer(self, code: str, ctx: ScanContext, request_id: str | None = None) -> dict[str, Any]:
        """The scan's answer body. With ``request_id``, a retry of the terminal's request gets
        the first body back (``RequestIdReused`` for another request under the same id)."""
        checked = self.verifier.check(code)
        if request_id is None:
            return self._decide(checked, ctx).to_dict()
        return self.once(ctx, checked, Attempt(ctx.terminal_id, request_id,
                                               fingerprint("verify", code, ctx.direction)),
                         lambda: self._decide(checked, ctx))

    def once(self, ctx: ScanContext, checked: Decision, attempt: Attempt,
             decide: Callable[[], Decision]) -> dict[str, Any]:
        """``decide()``'s body the first time ``attempt`` is seen, the stored body on a retry.

        ``decide`` must observe its decision. Without Redis nothing is decided: the answer is what
        a scan without ``request_id`` gets then (``degraded`` for a genuine code), observed.
        """
        try:
            return self.retries.once(attempt, self.retries.until(checked),
                                     lambda: decide().to_dict())
        except Degraded as down:
            refused = Decision.from_error(down, checked.claims) if checked.accepted else checked
            self.observe(ctx, refused)
            return refused.to_dict()

    def _decide(self, checked: Decision, ctx: ScanContext) -> Decision:
        scene = self.scenes.get(ctx.kind)
        if scene is None or not checked.accepted:
            decision = self.verifier.core.claim(checked)
        else:
            decision = scene.decide(checked, ctx)
        self.observe(ctx, decision)
        return decision

    def observe(self, ctx: ScanContext, decision: Decision) -> None:
        """Tell the observers (audit log) about a decided scan; also used by hall endpoints."""
        for observe in self.observers:
            try:
                observe(ctx, decision)
            except Exception:  # an observer must never turn a decided scan into an error
                log.exception("scan observer failed", extra={"terminal": ctx.terminal_id})

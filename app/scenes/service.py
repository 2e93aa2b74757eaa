"""A scan, end to end: the verification core's check, then the policy of the terminal's kind.

Each terminal kind with a policy has a scene module exposing ``build(rt) -> Scene``; a kind
without one (hall terminals at /v1/verify) just claims first use. Observers (the audit log)
see every decision, accepts and denies alike.
"""
from __future__ import annotations

import logging
import time
from typing import Callable, Mapping

from app.audit.scans import scan_observer
from app.codes.decision import Decision
from app.runtime import Runtime
from app.scenes.base import ScanContext, Scene

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

    def context(self, terminal_id: str, kind: str, site: Mapping[str, str],
                direction: str | None = None) -> ScanContext:
        return ScanContext(terminal_id, kind, site, direction, self.clock())

    def scan(self, code: str, ctx: ScanContext) -> Decision:
        checked = self.verifier.check(code)
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

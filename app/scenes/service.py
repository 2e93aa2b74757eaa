"""A scan, end to end: the verification core's check, then the policy of the terminal's kind.

Scene modules are found by kind (``app.scenes.<kind>`` exposing ``build(rt) -> Scene``); a kind
without a policy (hall terminals at /v1/verify) just claims first use. Observers (the audit log)
see every decision, accepts and denies alike.
"""
from __future__ import annotations

import importlib
import logging
import time
from typing import Callable, Mapping

from app.codes.decision import Decision
from app.runtime import Runtime
from app.scenes.base import ScanContext, Scene

log = logging.getLogger(__name__)

SCENE_MODULES = {"bus": "app.scenes.bus", "metro": "app.scenes.metro", "scenic": "app.scenes.scenic"}

Observer = Callable[[ScanContext, Decision], None]


def build_scenes(rt: Runtime) -> dict[str, Scene]:
    scenes: dict[str, Scene] = {}
    for kind, module_name in SCENE_MODULES.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        scenes[kind] = module.build(rt)
    return scenes


class ScanService:
    def __init__(self, rt: Runtime, scenes: Mapping[str, Scene] | None = None,
                 observers: list[Observer] | None = None, clock: Callable[[], float] = time.time) -> None:
        self.verifier = rt.verifier
        self.scenes = dict(build_scenes(rt) if scenes is None else scenes)
        self.observers = list(observers or [])
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

"""Where scenes record scans: recording scripts (the scene's script behind ``PRELUDE``), the plain
claim for kinds without a scene, and the one-XADD record of a deny decided before any script.

A recording script that finds the trust generation moved raises ``TrustMoved``: it changed
nothing, and the caller catches up with the feed and decides again (``ScanService.fresh``). A
Redis failure raises ``Degraded``: nothing was decided or recorded. Such a scan cannot be recorded
in Redis; it is counted (``citycode_scans_unrecorded_total``) and logged without personal data.
"""
from __future__ import annotations

import logging
import secrets
from typing import Any, Callable, Mapping, Sequence

import redis
from prometheus_client import Counter

from app.codes.decision import CodeClaims, Decision
from app.codes.errors import Degraded, Replayed
from app.records.stream import DEFAULT_STREAM, GENERATION_KEYS, PRELUDE, draft, shard_stream
from app.scenes.atomic import AtomicScript, replay_expiry, replay_key_for
from app.scenes.base import ScanContext
from app.store.slots import SHARDS, shard_of

log = logging.getLogger(__name__)

TRUST_REASONS = frozenset({"ok", "suspended", "revoked"})  # decided on the trust state

UNRECORDED = Counter("citycode_scans_unrecorded_total",
                     "Scans answered but not recorded (the state store was unavailable)", ["script"])

# KEYS[3]: replay.  ARGV[4]: replay EXAT, ARGV[5]: '1' to record an accept too.
_CLAIM = """
if redis.call('EXISTS', KEYS[3]) == 1 then
  record('replayed')
  return {'replayed'}
end
redis.call('SET', KEYS[3], '1', 'EXAT', ARGV[4])
if ARGV[5] == '1' then record('ok') end
return {'ok'}
"""

# ARGV[4]: the reason decided before any scene.
_DENY = """
record(ARGV[4])
return {'recorded'}
"""


class TrustMoved(Exception):
    """The feed changed since this worker last looked (as the copy of rider shard ``shard`` says);
    nothing was changed or recorded."""

    def __init__(self, generation: bytes, shard: int = 0) -> None:
        super().__init__("trust generation moved")
        self.generation = generation
        self.shard = shard


def record_shard(ctx: ScanContext, claims: CodeClaims | None) -> int:
    """The rider shard a scan is recorded in: the code's pseudonym's, or for a code that never
    verified, the terminal's (so a storm of forged codes spreads by terminal)."""
    return shard_of(claims.sub if claims is not None else ctx.terminal_id)


class RecordingScript:
    """A scene's Lua script run behind ``PRELUDE`` (see ``app.records.stream``)."""

    def __init__(self, records: ScanRecords, source: str, name: str) -> None:
        self.records = records
        self.name = name
        self._script = AtomicScript(records.client, PRELUDE + source, name,
                                    wait_replicas=records.wait_replicas)

    def __call__(self, keys: Sequence[str], args: Sequence[Any], rec: str, *, shard: int,
                 trust: bool = True) -> list[Any]:
        """Run in rider shard ``shard`` (its stream and generation copy; ``keys`` must be in its
        slot); the reply without the prelude. Raises ``TrustMoved`` or ``Degraded``."""
        records = self.records
        seen = records.seen(shard) if trust else "-"
        try:
            reply = self._script([records.streams[shard], GENERATION_KEYS[shard], *keys],
                                 [seen, records.candidate, rec, *args])
        except Degraded:
            UNRECORDED.labels(self.name).inc()
            log.warning("scan answered degraded and not recorded", extra={"script": self.name})
            raise
        if reply and reply[0] in (b"stale", "stale"):
            raise TrustMoved(reply[1], shard)
        return reply  # type: ignore[no-any-return]


class ScanRecords:
    """The record sink of one process: its streams (``<stream>:{rNN}``, one per rider shard), and
    the generation its trust state follows.

    ``generation(shard)`` returns the generation the worker's trust state was read at, as the
    shard's copy last said ('' when it never read one: the first script then always says
    ``stale``); without it scripts skip the check. ``wait_replicas``: see ``AtomicScript``.
    """

    def __init__(self, client: "redis.Redis[bytes]", *, stream: str = DEFAULT_STREAM,
                 generation: Callable[[int], str] | None = None, leeway: int = 5,
                 wait_replicas: int = 0) -> None:
        self.client = client
        self.stream = stream
        self.streams = tuple(shard_stream(stream, shard) for shard in range(SHARDS))
        self.leeway = leeway
        self.wait_replicas = wait_replicas
        self.seen: Callable[[int], str] = generation or (lambda shard: "-")
        self.candidate = secrets.token_hex(8)
        self._claim = self.script(_CLAIM, "scan.claim")
        self._deny = self.script(_DENY, "scan.deny")

    def script(self, source: str, name: str) -> RecordingScript:
        return RecordingScript(self, source, name)

    @staticmethod
    def draft(ctx: ScanContext, claims: CodeClaims | None, *, acc: Mapping[str, Any] | None = None,
              complete: Mapping[str, Any] | None = None) -> str:
        return draft(ctx, claims, acc=acc, complete=complete)

    def deny(self, ctx: ScanContext, decision: Decision) -> Decision:
        """Record a deny decided before any scene script (one round trip). A deny decided on the
        trust state is checked against the generation like an accept. Raises ``TrustMoved``; a
        Redis failure is counted and the deny still answered."""
        trust = decision.claims is not None and decision.reason in TRUST_REASONS
        try:
            self._deny([], [decision.reason], draft(ctx, decision.claims),
                       shard=record_shard(ctx, decision.claims), trust=trust)
        except Degraded:
            pass  # counted and logged by the script; the deny stands
        return decision

    def unrecorded(self, ctx: ScanContext, decision: Decision, why: str) -> None:
        """Count and log a decision answered without a record (Redis was unreachable)."""
        UNRECORDED.labels(why).inc()
        log.warning("scan answered and not recorded", extra={
            "terminal": ctx.terminal_id, "kind": ctx.kind, "reason": decision.reason, "why": why})

    def claim(self, checked: Decision, ctx: ScanContext, *, record_accept: bool = True) -> Decision:
        """Claim first use of an accepted check and record the scan (``record_accept=False``: the
        caller records an accept its own way, e.g. a disclosure request). Raises ``TrustMoved``."""
        claims = checked.claims
        assert claims is not None and checked.accepted, "claim accepted checks only"
        try:
            reply = self._claim([replay_key_for(claims)],
                                [replay_expiry(claims, self.leeway), "1" if record_accept else "0"],
                                draft(ctx, claims), shard=shard_of(claims.sub))
        except Degraded as down:
            return Decision.from_error(down, claims)
        if reply[0] in (b"replayed", "replayed"):
            return Decision.from_error(Replayed(claims.iss, claims.jti), claims)
        return checked

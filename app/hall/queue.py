"""Hall queues in Redis: take a number, call the next, skip a no-show, show the board.

Keys, per hall and city day (``<day>`` is YYYYMMDD in Asia/Shanghai, so numbers restart at local
midnight); every key is refreshed to a two-day TTL whenever it is written. All carry the hall's
hash tag ``{hall:<hall>}`` (``app.store.slots``), so a hall's queue is one Redis Cluster slot and
halls spread over the masters:

- ``cc:hall:{hall:<hall>}:<day>:seq:<service>`` — INCR: the service's last number (A001, A002 …);
- ``cc:hall:{hall:<hall>}:<day>:wait:<service>`` — list: waiting tickets, oldest first;
- ``…:issue`` — INCR: hall-wide issue order, to find the oldest ticket across the services a
  counter serves;
- ``…:tickets`` — hash ticket → pseudonym (``sub``) it is bound to;
- ``…:rank`` — hash ticket → issue order; ``…:issued`` — ticket → issue time;
- ``…:held`` — hash ``<service>:<sub>`` → that citizen's latest ticket;
- ``…:codes`` — hash ``<len(iss)>:<iss>:<jti>`` → ``<ticket>|<existing>``: the number a code took;
- ``…:calling`` — hash counter → ticket it is calling now;
- ``…:status`` — hash ticket → ``called`` / ``served`` / ``skipped``.

Taking a number is two scripts, because the code's replay key is in the rider's slot
(``cc:replay:{rNN}:…``, shared with verification and every scene) and the queue in the hall's:

1. ``_TAKE`` (hall slot) gives the citizen a number — a new one, or the one they already wait
   with for the service — and remembers it under the code (``codes``); a code that already took a
   number gets that number again and nothing new (a retry completes, never doubles);
2. ``_CLAIM`` (rider slot, behind the record prelude) claims the code's first use and appends the
   scan record with the ticket, so a replayed code is refused and recorded ``replayed``.

On a single Redis both steps are one script (``_TAKE_ONE``: one round trip). In a cluster, when
step 2 does not accept (replayed, Redis failing) a number step 1 created in this call is
voided (``_VOID``: out of the wait list and the hashes; its sequence number stays
burnt). A worker dying between the steps, or Redis failing just when a number is voided, leaves a
number in the queue that nobody was told (``citycode_hall_tickets_orphaned_total`` counts the
failed voids; a crash cannot count itself): the counter calls it and skips the no-show. A step 2 that finds the trust state stale keeps the
number for the scan's redo (the same number, completed); if the redo denies the code before any
script (a revocation announced just then), that number is left the same way. Two kiosks
racing with one code both get past step 1 with the same number; exactly one claims the code.
Prefixes are unique within a hall, so a ticket string names one service's number there.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import redis
from prometheus_client import Counter

from app.codes.decision import CodeClaims
from app.codes.errors import Degraded, Replayed
from app.hall.config import Hall, Service
from app.records.sink import ScanRecords, TrustMoved
from app.scenes.atomic import AtomicScript, replay_expiry, replay_key_for
from app.scenes.base import local_date
from app.store.redis import is_cluster
from app.store.slots import place_tag, shard_of

KEY_TTL_SECONDS = 2 * 24 * 3600

# Hall slot. KEYS[1..8]: seq, wait, issue, tickets, rank, issued, held, codes.
# ARGV[1..6]: sub, service, prefix, now, ttl, code id.
# Returns {made, ticket, ahead, issued_at, existing}: made 1 = a new number now, 0 = none made now
# (the citizen's waiting one handed back, or the number this code took before).
_TAKE = """
local done = redis.call('HGET', KEYS[8], ARGV[6])
if done then
  local ticket, existing = string.match(done, '^(.*)|(%d)$')
  local ahead = redis.call('LPOS', KEYS[2], ticket) or 0
  return {0, ticket, ahead, redis.call('HGET', KEYS[6], ticket) or ARGV[4], existing}
end
local holder = ARGV[2] .. ':' .. ARGV[1]
local held = redis.call('HGET', KEYS[7], holder)
if held then
  local ahead = redis.call('LPOS', KEYS[2], held)
  if ahead then
    redis.call('HSET', KEYS[8], ARGV[6], held .. '|1')
    redis.call('EXPIRE', KEYS[8], ARGV[5])
    return {0, held, ahead, redis.call('HGET', KEYS[6], held), '1'}
  end
end
local ticket = ARGV[3] .. string.format('%03d', redis.call('INCR', KEYS[1]))
local ahead = redis.call('RPUSH', KEYS[2], ticket) - 1
redis.call('HSET', KEYS[4], ticket, ARGV[1])
redis.call('HSET', KEYS[5], ticket, redis.call('INCR', KEYS[3]))
redis.call('HSET', KEYS[6], ticket, ARGV[4])
redis.call('HSET', KEYS[7], holder, ticket)
redis.call('HSET', KEYS[8], ARGV[6], ticket .. '|0')
for i = 1, 8 do redis.call('EXPIRE', KEYS[i], ARGV[5]) end
return {1, ticket, ahead, ARGV[4], '0'}
"""

# Hall slot. KEYS: wait, tickets, rank, issued, held, codes.  ARGV: ticket, holder, code id.
_VOID = """
redis.call('LREM', KEYS[1], 0, ARGV[1])
for i = 2, 4 do redis.call('HDEL', KEYS[i], ARGV[1]) end
if redis.call('HGET', KEYS[5], ARGV[2]) == ARGV[1] then redis.call('HDEL', KEYS[5], ARGV[2]) end
redis.call('HDEL', KEYS[6], ARGV[3])
return 1
"""

# Behind app.records.stream.PRELUDE, rider slot. KEYS[3]: replay.  ARGV[4..8]: replay EXAT,
# ticket, ahead, issued_at, existing. Every outcome is recorded; a ticket's record carries what the
# kiosk was told.
_CLAIM = """
if not redis.call('SET', KEYS[3], '1', 'NX', 'EXAT', ARGV[4]) then
  record('replayed')
  return {0}
end
record('ok', 'ticket', ARGV[5], 'ahead', ARGV[6], 'issued_at', ARGV[7], 'existing', ARGV[8])
return {1}
"""

# Single Redis: claim and take in ONE script (one round trip, as before the cluster), behind
# PRELUDE. KEYS[3..10]: replay, seq, wait, issue, tickets, rank, issued, held.
# ARGV[4..9]: replay EXAT, sub, service, prefix, now, ttl. Returns {0} (replayed) or
# {made, ticket, ahead, issued_at, existing}.
_TAKE_ONE = """
if not redis.call('SET', KEYS[3], '1', 'NX', 'EXAT', ARGV[4]) then
  record('replayed')
  return {0}
end
local holder = ARGV[6] .. ':' .. ARGV[5]
local held = redis.call('HGET', KEYS[10], holder)
if held then
  local ahead = redis.call('LPOS', KEYS[5], held)
  if ahead then
    local issued = redis.call('HGET', KEYS[9], held)
    record('ok', 'ticket', held, 'ahead', tostring(ahead), 'issued_at', issued, 'existing', '1')
    return {2, held, ahead, issued, '1'}
  end
end
local ticket = ARGV[7] .. string.format('%03d', redis.call('INCR', KEYS[4]))
local ahead = redis.call('RPUSH', KEYS[5], ticket) - 1
redis.call('HSET', KEYS[7], ticket, ARGV[5])
redis.call('HSET', KEYS[8], ticket, redis.call('INCR', KEYS[6]))
redis.call('HSET', KEYS[9], ticket, ARGV[8])
redis.call('HSET', KEYS[10], holder, ticket)
for i = 4, 10 do redis.call('EXPIRE', KEYS[i], ARGV[9]) end
record('ok', 'ticket', ticket, 'ahead', tostring(ahead), 'issued_at', ARGV[8], 'existing', '0')
return {1, ticket, ahead, ARGV[8], '0'}
"""

ORPHANED = Counter("citycode_hall_tickets_orphaned_total",
                   "Hall numbers made for a scan that was not accepted and not voided")

# KEYS: calling, status, rank, then one wait list per candidate service.  ARGV: counter, ttl.
# The oldest head (lowest hall-wide rank) wins; the counter's previous call counts as served.
_CALL = """
local best, best_rank, best_i
for i = 4, #KEYS do
  local head = redis.call('LINDEX', KEYS[i], 0)
  if head then
    local rank = tonumber(redis.call('HGET', KEYS[3], head)) or 0
    if not best or rank < best_rank then best, best_rank, best_i = head, rank, i end
  end
end
if not best then return false end
redis.call('LPOP', KEYS[best_i])
local previous = redis.call('HGET', KEYS[1], ARGV[1])
if previous and redis.call('HGET', KEYS[2], previous) == 'called' then
  redis.call('HSET', KEYS[2], previous, 'served')
end
redis.call('HSET', KEYS[1], ARGV[1], best)
redis.call('HSET', KEYS[2], best, 'called')
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[2])
return {best, best_i - 4}
"""

# KEYS: calling, status.  ARGV: counter, ttl.
_SKIP = """
local ticket = redis.call('HGET', KEYS[1], ARGV[1])
if not ticket then return false end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[2], ticket, 'skipped')
redis.call('EXPIRE', KEYS[2], ARGV[2])
return ticket
"""


@dataclass(frozen=True)
class Ticket:
    ticket: str
    service: str
    ahead: int
    issued_at: float
    existing: bool  # the citizen's ticket already waiting, handed back again


@dataclass(frozen=True)
class Call:
    ticket: str
    counter: str
    service: str | None = None


@dataclass(frozen=True)
class Board:
    calling: list[Call]
    waiting: dict[str, int]


class HallQueue:
    """The queues of every hall, in one Redis. Script failures raise ``Degraded``."""

    def __init__(self, client: "redis.Redis[bytes]", *, leeway: int = 5,
                 ttl: int = KEY_TTL_SECONDS, records: ScanRecords | None = None) -> None:
        self.client = client
        self.leeway = leeway
        self.ttl = ttl
        self.records = records or ScanRecords(client, leeway=leeway)
        self._take = AtomicScript(client, _TAKE, "hall.take", wait_replicas=self.records.wait_replicas)
        self._void = AtomicScript(client, _VOID, "hall.void")
        self._claim = self.records.script(_CLAIM, "hall.claim")
        self._take_one = None if is_cluster(client) else self.records.script(_TAKE_ONE, "hall.take")
        self._call = AtomicScript(client, _CALL, "hall.call")
        self._skip = AtomicScript(client, _SKIP, "hall.skip")

    def take(self, hall: Hall, service: Service, claims: CodeClaims, now: float, rec: str) -> Ticket:
        """Claim the code and give its citizen a number for ``service`` (or their waiting one);
        ``rec`` is the scan's record draft, appended by the same script whatever the outcome.

        Raises ``Replayed`` if the code was used before, ``Degraded`` if Redis cannot answer,
        ``TrustMoved`` if the trust generation moved (nothing changed).
        """
        day = _day_prefix(hall.hall, now)
        if self._take_one is not None:
            keys = [replay_key_for(claims), f"{day}seq:{service.service}", f"{day}wait:{service.service}",
                    *(day + name for name in ("issue", "tickets", "rank", "issued", "held"))]
            outcome = self._take_one(keys, [replay_expiry(claims, self.leeway), claims.sub, service.service,
                                            service.prefix, f"{now:.3f}", self.ttl], rec,
                                     shard=shard_of(claims.sub))
            if outcome[0] == 0:
                raise Replayed(claims.iss, claims.jti)
            _, ticket, ahead, issued_at, existing = outcome
            return Ticket(_text(ticket), service.service, int(ahead), float(issued_at), _text(existing) == "1")
        names = ("issue", "tickets", "rank", "issued", "held", "codes")
        hall_keys = [f"{day}seq:{service.service}", f"{day}wait:{service.service}", *(day + n for n in names)]
        code_id = f"{len(claims.iss)}:{claims.iss}:{claims.jti}"
        made, ticket, ahead, issued_at, existing = self._take(
            hall_keys, [claims.sub, service.service, service.prefix, f"{now:.3f}", self.ttl, code_id])
        ticket = _text(ticket)
        void = [hall_keys[1], *hall_keys[3:]], [ticket, f"{service.service}:{claims.sub}", code_id]
        try:
            outcome = self._claim([replay_key_for(claims)],
                                  [replay_expiry(claims, self.leeway), ticket, ahead, _text(issued_at),
                                   _text(existing)], rec, shard=shard_of(claims.sub))
        except Degraded:
            if made == 1:
                self._undo(*void)
            raise
        # TrustMoved: kept — the scan is decided again at once, and its step 1 finds this number
        # under the code (``codes``) and completes it
        if outcome[0] == 0:
            if made == 1:
                self._undo(*void)
            raise Replayed(claims.iss, claims.jti)
        return Ticket(ticket, service.service, int(ahead), float(issued_at), _text(existing) == "1")

    def _undo(self, keys: list[str], args: list[str]) -> None:
        """Void a number made for a scan that was not accepted (best effort, counted)."""
        try:
            self._void(keys, args)
        except Degraded:
            ORPHANED.inc()

    def call(self, hall: Hall, counter: str, services: Sequence[Service], now: float) -> Call | None:
        """Give ``counter`` the oldest waiting ticket among ``services``; None when nobody waits."""
        day = _day_prefix(hall.hall, now)
        keys = [f"{day}calling", f"{day}status", f"{day}rank",
                *(f"{day}wait:{s.service}" for s in services)]
        called = self._call(keys, [counter, self.ttl])
        if called is None:
            return None
        return Call(_text(called[0]), counter, services[int(called[1])].service)

    def skip(self, hall: Hall, counter: str, now: float) -> str | None:
        """Mark ``counter``'s current call a no-show and clear it; the ticket, or None if no call."""
        day = _day_prefix(hall.hall, now)
        skipped = self._skip([f"{day}calling", f"{day}status"], [counter, self.ttl])
        return None if skipped is None else _text(skipped)

    def current(self, hall: Hall, counter: str, now: float) -> str | None:
        """The ticket ``counter`` is calling now (for a recall), or None."""
        try:
            ticket = self.client.hget(f"{_day_prefix(hall.hall, now)}calling", counter)
        except (redis.RedisError, OSError):
            raise Degraded("hall.current: state store unavailable") from None
        return None if ticket is None else _text(ticket)

    def board(self, hall: Hall, now: float) -> Board:
        """Current call per counter (in counter order) and waiting count per service: one pipeline.
        Only the hall's configured counters are shown, whatever an older version let into Redis."""
        day = _day_prefix(hall.hall, now)
        pipe = self.client.pipeline(transaction=False)
        pipe.hgetall(f"{day}calling")
        for service in hall.services:
            pipe.llen(f"{day}wait:{service.service}")
        try:
            calling, *lengths = pipe.execute()
        except (redis.RedisError, OSError):
            raise Degraded("hall.board: state store unavailable") from None
        calls = sorted((call for call in (Call(_text(t), _text(c)) for c, t in calling.items())
                        if call.counter in hall.counters),
                       key=lambda call: _counter_order(call.counter))
        return Board(calls, {s.service: int(n) for s, n in zip(hall.services, lengths)})


def _day_prefix(hall_id: str, now: float) -> str:
    return f"cc:hall:{place_tag('hall', hall_id)}:{local_date(now):%Y%m%d}:"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _counter_order(counter: str) -> tuple[int, int, str]:
    """Numbered counters in number order (2 before 10), then named ones."""
    return (0, int(counter), "") if counter.isascii() and counter.isdigit() else (1, 0, counter)

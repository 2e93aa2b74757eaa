"""Hall queues in Redis: take a number, call the next, skip a no-show, show the board.

Keys, per hall and city day (``<day>`` is YYYYMMDD in Asia/Shanghai, so numbers restart at local
midnight); every key is refreshed to a two-day TTL whenever it is written:

- ``cc:hall:<hall>:<day>:seq:<service>`` — INCR: the service's last number (A001, A002 …);
- ``cc:hall:<hall>:<day>:wait:<service>`` — list: waiting tickets, oldest first;
- ``cc:hall:<hall>:<day>:issue`` — INCR: hall-wide issue order, to find the oldest ticket across
  the services a counter serves;
- ``cc:hall:<hall>:<day>:tickets`` — hash ticket → pseudonym (``sub``) it is bound to;
- ``cc:hall:<hall>:<day>:rank`` — hash ticket → issue order; ``…:issued`` — ticket → issue time;
- ``cc:hall:<hall>:<day>:held`` — hash ``<service>:<sub>`` → that citizen's latest ticket;
- ``cc:hall:<hall>:<day>:calling`` — hash counter → ticket it is calling now;
- ``cc:hall:<hall>:<day>:status`` — hash ticket → ``called`` / ``served`` / ``skipped``.

Taking a number claims the code's first use (``cc:replay:…``, shared with verification) in the
same Lua script, so a replayed code never gets a number and two kiosks racing never share one.
Prefixes are unique within a hall, so a ticket string names one service's number there.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import redis

from app.codes.decision import CodeClaims
from app.codes.errors import Degraded, Replayed
from app.hall.config import Hall, Service
from app.records.sink import ScanRecords
from app.scenes.atomic import AtomicScript, replay_expiry, replay_key_for
from app.scenes.base import local_date

KEY_TTL_SECONDS = 2 * 24 * 3600

# Behind app.records.stream.PRELUDE. KEYS[3..10]: replay, seq, wait, issue, tickets, rank, issued,
# held.  ARGV[4..9]: replay EXAT, sub, service, prefix, now, ttl.
# A citizen already waiting for this service gets the same ticket back; the code is spent anyway.
# Every outcome is recorded; a ticket's record carries what the kiosk was told.
_TAKE = """
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
    return {2, held, ahead, issued}
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
return {1, ticket, ahead, ARGV[8]}
"""

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
        self._take = self.records.script(_TAKE, "hall.take")
        self._call = AtomicScript(client, _CALL, "hall.call")
        self._skip = AtomicScript(client, _SKIP, "hall.skip")

    def take(self, hall: Hall, service: Service, claims: CodeClaims, now: float, rec: str) -> Ticket:
        """Claim the code and give its citizen a number for ``service`` (or their waiting one);
        ``rec`` is the scan's record draft, appended by the same script whatever the outcome.

        Raises ``Replayed`` if the code was used before, ``Degraded`` if Redis cannot answer,
        ``TrustMoved`` if the trust generation moved (nothing changed).
        """
        day = _day_prefix(hall.hall, now)
        keys = [replay_key_for(claims), f"{day}seq:{service.service}", f"{day}wait:{service.service}",
                *(day + name for name in ("issue", "tickets", "rank", "issued", "held"))]
        args = [replay_expiry(claims, self.leeway), claims.sub, service.service, service.prefix,
                f"{now:.3f}", self.ttl]
        outcome = self._take(keys, args, rec)
        if outcome[0] == 0:
            raise Replayed(claims.iss, claims.jti)
        _, ticket, ahead, issued_at = outcome
        return Ticket(_text(ticket), service.service, int(ahead), float(issued_at), outcome[0] == 2)

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
    return f"cc:hall:{hall_id}:{local_date(now):%Y%m%d}:"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _counter_order(counter: str) -> tuple[int, int, str]:
    """Numbered counters in number order (2 before 10), then named ones."""
    return (0, int(counter), "") if counter.isascii() and counter.isdigit() else (1, 0, counter)

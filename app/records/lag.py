"""How far the record writer is behind: records in the streams not yet in SQL, and the age of the
oldest. Read from Redis (two round trips: a pipeline — one per master in a cluster — and TIME), so any process
can report it."""
from __future__ import annotations

from dataclasses import dataclass

import redis

from app.records.stream import record_streams


@dataclass(frozen=True)
class Lag:
    records: int  # undrained: appended and not yet acknowledged after a commit
    oldest_seconds: float  # age of the oldest undrained record (0 when none)


def lag(client: "redis.Redis[bytes]", stream: str) -> Lag:
    """The lag over every record stream of ``stream`` (its rider shards' and itself). Stream entry
    ids start with Redis's clock in ms, compared with Redis's TIME, so clocks of other machines do
    not matter (in a cluster, the masters' clocks are assumed close). Raises ``redis.RedisError``."""
    names = record_streams(stream)
    pipe = client.pipeline(transaction=False)
    for name in names:
        pipe.xlen(name)
        pipe.xrange(name, count=1)
    replies = pipe.execute()
    seconds, micros = client.time()
    total, oldest = 0, None
    for length, first in zip(replies[0::2], replies[1::2]):
        if not length or not first:
            continue
        total += int(length)
        entry_id = first[0][0]
        millis = int((entry_id.decode() if isinstance(entry_id, bytes) else entry_id).split("-")[0])
        oldest = millis if oldest is None else min(oldest, millis)
    if oldest is None:
        return Lag(0, 0.0)
    return Lag(total, max(0.0, seconds + micros / 1e6 - oldest / 1000))


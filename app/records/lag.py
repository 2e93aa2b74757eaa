"""How far the record writer is behind: records in the stream not yet in SQL, and the age of the
oldest. Read from Redis (one pipelined round trip), so any process can report it."""
from __future__ import annotations

from dataclasses import dataclass

import redis


@dataclass(frozen=True)
class Lag:
    records: int  # undrained: appended and not yet acknowledged after a commit
    oldest_seconds: float  # age of the oldest undrained record (0 when none)


def lag(client: "redis.Redis[bytes]", stream: str) -> Lag:
    """The stream's lag. Stream entry ids start with Redis's clock in ms, compared with Redis's
    TIME, so clocks of other machines do not matter. Raises ``redis.RedisError``."""
    pipe = client.pipeline(transaction=False)
    pipe.xlen(stream)
    pipe.xrange(stream, count=1)
    pipe.time()
    length, first, (seconds, micros) = pipe.execute()
    if not length or not first:
        return Lag(0, 0.0)
    entry_id = first[0][0]
    millis = int((entry_id.decode() if isinstance(entry_id, bytes) else entry_id).split("-")[0])
    return Lag(int(length), max(0.0, seconds + micros / 1e6 - millis / 1000))

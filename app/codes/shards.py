"""Rider shards: which Redis Cluster slot a code's replay record and its rider's state live in.

``shard_of(sub)`` = CRC32(sub) mod ``SHARDS``; ``rider_tag(sub)`` is the shard's hash tag ``{…}``
put in every rider key. Here (not in ``app.store``) because the replay key is the codes
package's; the slot design is documented in ``app.store.slots``.
"""
from __future__ import annotations

import zlib

from redis.crc import key_slot

SHARDS = 64  # a constant: changing it moves every rider's keys (see app.store.slots)
SLOTS = 16384


def _tag(index: int) -> str:
    """The first of ``r<i>``, ``r<i>.1``, … whose slot is in the ``index``-th of ``SHARDS`` equal
    ranges of the slot space (so shards spread evenly over masters owning equal ranges)."""
    low, high = index * SLOTS // SHARDS, (index + 1) * SLOTS // SHARDS
    for attempt in range(1_000_000):
        candidate = f"r{index:02d}" if attempt == 0 else f"r{index:02d}.{attempt}"
        if low <= key_slot(candidate.encode()) < high:
            return candidate
    raise AssertionError("no tag found")  # pragma: no cover - 256 slots per range: found in ~64 tries


TAGS: tuple[str, ...] = tuple(_tag(i) for i in range(SHARDS))
BRACED: tuple[str, ...] = tuple("{" + tag + "}" for tag in TAGS)


def shard_of(sub: str) -> int:
    """The rider shard of a pseudonym (stable: CRC32 of its UTF-8 bytes mod ``SHARDS``)."""
    return zlib.crc32(sub.encode("utf-8", "surrogatepass")) % SHARDS


def rider_tag(sub: str) -> str:
    """``{<tag>}`` of the pseudonym's shard, to put in a key."""
    return BRACED[shard_of(sub)]

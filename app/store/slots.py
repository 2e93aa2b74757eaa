"""Where keys live in a Redis Cluster: the hash tags every key of the service carries.

A Redis Cluster runs a multi-key script only when all its keys hash to one of the 16,384 slots
(else ``CROSSSLOT``); a key's slot is the CRC16 of its hash tag (the part between the first
``{`` and the next ``}``). The same keys are used on a single Redis, where tags mean nothing, so
one key layout serves both and a deployment moves from one to the other without a rename.

Rider shards. A code is spent exactly once across ALL scenes, so its replay key must be in one
slot whatever scene scans it; the scene's own state (metro trip, bus duplicate-tap window, scenic
admitted set) is per pseudonym. Both are tagged by the rider's shard: ``{rNN}`` with ``NN`` =
``shard_of(sub)`` = CRC32(sub) mod ``SHARDS``. ``sub`` is signed in the code, so every scene and
plain verification find the same shard. With the shard go:

- ``cc:replay:{rNN}:<len(iss)>:<iss>:<jti>`` — first use of a code (``app.codes.replay``);
- ``cc:metro:trip:{rNN}:<sub>``, ``cc:bus:tap:{rNN}:<vehicle>:<sub>``,
  ``cc:scenic:in:{rNN}:<spot>:<day>`` — the rider state each scene changes with the claim;
- ``cc:scans:{rNN}`` — the scan-record stream of the shard (every recording script appends the
  record in the same slot; the record writer reads all ``SHARDS`` streams);
- ``cc:trust:generation:{rNN}`` — a copy of the trust generation per shard, set by every
  announcement, so the in-script check stays in the slot.

Tag spreading. The tags are not the literal ``r00``..``r63``: the tag of shard ``i`` is the first
of ``r<i>``, ``r<i>.1``, ``r<i>.2`` … whose slot falls in the ``i``-th of ``SHARDS`` equal ranges
of the slot space. ``redis-cli --cluster create`` (and any even rebalancing) gives each master a
contiguous, equal range of slots, so the shards — and with them the scan load — spread over the
masters as evenly as ``SHARDS`` allows (64 shards: 21 or 22 on each of 3 masters, 8 on each of 8,
1 on each of 64). The search is deterministic; ``TAGS`` is pinned by a test.

``SHARDS`` is a constant, not a setting: changing it (or the tag search) moves every rider to
another key. Replay keys live at most a code's lifetime plus leeway and margin (~95 s by default),
trips up to their expiry (4 h + 1 h), scenic sets a city day: a change is safe only while no scans
are served for that long, or with a migration that copies those keys.

Places that are not per rider get their own tag: ``{spot:<spot>}`` for a scenic spot's capacity
and count per day (``app.scenes.scenic``), ``{hall:<hall>}`` for a hall's queues
(``app.hall.queue``). A scan touching both runs two scripts (see those modules). Keys used by
single-key commands only (retry memory, disclosure requests, tap uploads and their replies, auth
generation) need no tag: any slot will do.
"""
from __future__ import annotations

from redis.crc import key_slot

from app.codes.shards import BRACED, SHARDS, SLOTS, TAGS, rider_tag, shard_of

__all__ = ["BRACED", "SHARDS", "SLOTS", "TAGS", "place_tag", "rider_tag", "shard_of", "slot_of"]


def slot_of(key: str | bytes) -> int:
    """The cluster slot of a key (CRC16 of its hash tag, or of the whole key without one)."""
    return key_slot(key.encode() if isinstance(key, str) else key)


def place_tag(kind: str, name: str) -> str:
    """``{<kind>:<name>}``: the tag of a place's keys (a scenic spot, a hall)."""
    return "{" + f"{kind}:{name}" + "}"

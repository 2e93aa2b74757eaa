"""Scan records: every decided scan is recorded in Redis by the same Lua script that decides it,
and a background writer drains the records into the SQL audit log in batches.

Redis keys (all passed to scripts as KEYS, never built inside Lua):

- ``cc:scans`` (``Settings.records_stream``) — the stream of scan records. One stream by default.
  It is a KEY of every recording script, not a constant in Lua, so a Redis Cluster deployment can
  choose a stream per hash tag (``cc:scans:{<tag>}``, with the same tag on the replay, trip and
  generation keys of that script: a script's keys must share one slot) and run the writer over
  each stream; nothing in a script assumes there is only one.
- ``cc:trust:generation`` — the revocation feed's generation (``app.verification.trust_feed``).
  Each recording script compares it with the generation the worker last saw (ARGV): when they
  differ the script changes nothing and answers ``stale``; the worker catches up with the feed and
  decides again. So the common scan is one round trip.
- consumer group ``audit-writer`` on the stream: the writer reads with XREADGROUP, acknowledges
  (XACK) only after the SQL transaction committed, then deletes (XDEL) what it acknowledged, so the
  stream's length is the number of records not yet in SQL.

Record format (stream entry fields; see ``app.records.stream``):

- ``rec`` — JSON written by the worker before the script: ``id`` (record id: milliseconds, then
  80 random bits; the idempotency key in SQL), ``t`` terminal id, ``k`` kind, ``s`` site, ``d``
  direction, ``at`` scan time (epoch seconds), ``sub``/``jti``/``iss`` when the code was authentic,
  ``acc`` the scene data an accept carries when it is known before the script (bus fare, metro
  entry trip), ``c`` the inputs
  of scene data that only the script's outcome completes (metro exit: ``to`` and ``ent``; scenic:
  ``spot``; hall: ``hall`` and ``service``);
- ``r`` — the reason the script decided (``ok`` is an accept);
- script outputs that complete the data: ``from``/``entered_at`` (metro exit), ``remaining``
  (scenic), ``ticket``/``ahead``/``issued_at``/``existing`` (hall kiosk).

Whoever drains a record derives the same decision and data the worker answered
(``app.records.complete``, shared with the scenes).
"""

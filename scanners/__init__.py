"""Readers at the edge — bus readers, metro gates, scenic turnstiles, hall kiosks — that keep
deciding without the server and lose nothing they decided.

The reader library (``scanners.reader.Reader``) verifies with the server's own core,
``app.codes`` (imported, never copied), and keeps everything durable in one SQLite file per reader:

- ``reader`` — ``Reader``: enrol/open, ``scan`` (online first, offline fallback), ``sync``,
  ``upload``, ``status``; ``options`` — ``ReaderOptions`` and ``ReaderDecision``;
- ``local`` — the SQLite file (WAL, ``synchronous=FULL``) and its schema;
- ``journal`` — every decision as a POST /v1/taps record under the next ``seq``;
- ``replay`` — ``SqliteReplayStore``, the core's replay-store protocol on that file;
- ``trust`` / ``sync`` — JWKS and revocation feed, persisted; the sync procedure;
- ``offline`` — scene rules that run offline, and the degraded policy per scene;
- ``online`` — the HTTP client and the online/offline ``Uplink``; ``upload`` — batches with
  backoff and jitter.

The simulators on top of it: ``cli`` (``citycode-scanner``), ``decode`` (real QR images with
zxing-cpp) and ``fleet`` (many readers with scripted outages).
"""

"""The reader: online first, offline when it must, and every decision journaled before it returns.

A scan is checked locally first with the shared core (``app.codes.verify.Verifier.check``: keys
from the synced JWKS, trust from the synced revocation feed), which costs well under a millisecond
and gives the journal the code's claims. Then, unless the reader is offline:

- ``POST /v1/verify`` (hall kiosks with a service: ``POST /v1/halls/{hall}/tickets``) with a fresh
  ``request_id`` and a short timeout. The server's answer is the decision; it is journaled
  (mode ``online``) together with a local replay claim and the scene state it implies, so the code
  cannot pass offline here afterwards.
- On a timeout, connection error, 5xx/429, or a ``degraded`` answer, the reader decides offline
  and stays offline for a backoff (5 s, doubling to 60 s); the next scan after it tries again, and
  so does every ``sync``/``upload`` — the first answer puts the reader back online. The journal
  record keeps the ``request_id`` it tried, so the server can match a lost reply.

Offline, one SQLite transaction claims the code in the replay cache, applies the scene rule
(``scanners.offline``) and appends the journal record with the next ``seq``; it commits before
``scan`` returns, so no gate opens on a decision that a crash could forget.
"""
from __future__ import annotations

import math
import sqlite3
import time
from pathlib import Path
from typing import Any, Mapping

from app.codes.decision import Decision
from app.codes.verify import Verifier
from scanners import offline as scene
from scanners.journal import Journal
from scanners.local import FILENAME, LocalDB
from scanners.online import ServiceClient, Uplink
from scanners.options import ReaderDecision, ReaderError, ReaderOptions, plain_json
from scanners.replay import SqliteReplayStore
from scanners.sync import SyncResult, sync
from scanners.trust import TrustMaterial
from scanners.upload import Backoff, Uploader, UploadResult

__all__ = ["Reader", "ReaderDecision", "ReaderError", "ReaderOptions", "SyncResult", "UploadResult"]

DEFAULT_MAX_TTL = 60
DEFAULT_LEEWAY = 5


class Reader:
    """One terminal's reader on its data dir. Make one with ``enrol`` (first time) or ``open``."""

    def __init__(self, db: LocalDB, options: ReaderOptions) -> None:
        self.db, self.options = db, options
        me = db.get("terminal.me")
        token, base_url = db.get("terminal.token"), options.base_url or db.get("terminal.base_url")
        if not me or not token or not base_url:
            raise ReaderError(f"no reader enrolled in {db.path.parent}")
        self.terminal_id: str = me["terminal_id"]
        self.kind: str = me["kind"]
        self.site: dict[str, str] = dict(me["site"])
        self.client = ServiceClient(base_url, token, timeout=options.sync_timeout_s)
        self.material = TrustMaterial(db)
        self._offset = self.material.clock_offset
        self.replay = SqliteReplayStore(db, self.now)
        self.verifier = Verifier(lambda: self.material.keys, self.material.state, self.replay,
                                 me["issuer"],
                                 max_ttl=options.max_ttl or int(me.get("code_ttl_seconds") or DEFAULT_MAX_TTL),
                                 leeway=_first(options.leeway, me.get("clock_leeway_seconds"), DEFAULT_LEEWAY),
                                 clock=self.now, reader_keys=lambda: self.material.reader_keys)
        self.rules = scene.OfflineRules(self.kind, self.site)
        self.journal = Journal(db)
        self.uploader = Uploader(db, self.journal, self.client, Backoff(
            options.upload_attempts, options.upload_backoff_s, options.upload_backoff_cap_s,
            options.sleep, options.rng), timeout=options.upload_timeout_s)
        self.uplink = Uplink(self.client, self.kind, self.site, timeout=options.online_timeout_s,
                             retry_after_s=options.retry_online_after_s,
                             retry_max_s=options.retry_online_max_s, monotonic=options.monotonic,
                             on_error=lambda error: db.put("online.last_error", error))

    # -- making one ----------------------------------------------------------------------------
    @classmethod
    def enrol(cls, data_dir: Path, base_url: str, terminal_token: str, **options: Any) -> Reader:
        """First contact: who am I (``GET /v1/terminals/me``), the JWKS and the full revocation
        feed, all stored in ``data_dir/reader.sqlite3``. Raises ``ReaderError`` if the server
        cannot be reached or the data dir belongs to another terminal. Enrolling again with the
        same token just syncs."""
        opts = ReaderOptions.of(options)
        db = LocalDB.in_dir(Path(data_dir))
        try:
            known = db.get("terminal.token")
            if known is not None and known != terminal_token:
                raise ReaderError(f"{data_dir} holds another terminal's reader; use a new data dir")
            material = TrustMaterial(db)
            client = ServiceClient(base_url, terminal_token, timeout=opts.sync_timeout_s)
            try:
                result = sync(client, material, opts.clock, overlap=opts.feed_overlap)
            finally:
                client.close()
            if not result.ok:
                raise ReaderError(f"enrolment failed: {result.error}")
            with db.transaction():
                db.put("terminal.token", terminal_token)
                db.put("terminal.base_url", base_url.rstrip("/"))
            return cls(db, opts)
        except BaseException:
            db.close()
            raise

    @classmethod
    def provision(cls, data_dir: Path, *, me: Mapping[str, Any], jwks: Mapping[str, Any],
                  feed: Mapping[str, Any], base_url: str, terminal_token: str, now: float,
                  **options: Any) -> Reader:
        """Enrol from material delivered out of band — a depot's provisioning file, the test
        vectors — leaving the state ``enrol`` leaves, with no network: ``me`` is a
        ``GET /v1/terminals/me`` answer, ``jwks`` a JWK Set, ``feed`` a full
        ``GET /v1/trust/revocations?since=0`` answer, all as of ``now`` on the reader's clock."""
        if not feed.get("full", False) or feed.get("more", False):
            raise ReaderError("provisioning needs one full revocation feed page (full, not more)")
        db = LocalDB.in_dir(Path(data_dir))
        try:
            if db.get("terminal.token") not in (None, terminal_token):
                raise ReaderError(f"{data_dir} holds another terminal's reader; use a new data dir")
            material = TrustMaterial(db)
            with db.transaction():
                db.put("terminal.me", {k: v for k, v in me.items() if k != "server_time"})
                db.put("terminal.token", terminal_token)
                db.put("terminal.base_url", base_url.rstrip("/"))
            material.replace_keys(jwks)
            material.apply_page(list(feed["entries"]), int(feed["version"]), full=True)
            material.set_clock(0.0, now)
            material.mark_synced(now)
        finally:
            db.close()
        return cls.open(Path(data_dir), **options)

    @classmethod
    def open(cls, data_dir: Path, **options: Any) -> Reader:
        """Reopen an enrolled reader (after a restart): no network needed."""
        opts = ReaderOptions.of(options)
        if not (Path(data_dir) / FILENAME).is_file():
            raise ReaderError(f"no reader enrolled in {data_dir}")
        db = LocalDB.in_dir(Path(data_dir))
        try:
            return cls(db, opts)
        except BaseException:
            db.close()
            raise

    # -- time and trust freshness --------------------------------------------------------------
    def now(self) -> float:
        """The server's time as this reader best knows it: its clock minus the measured offset."""
        return self.options.clock() - self._offset

    def trust_age(self) -> float | None:
        synced = self.material.synced_at
        return None if synced is None else max(0.0, self.options.clock() - synced)

    def clock_age(self) -> float | None:
        synced = self.material.clock_synced_at
        return None if synced is None else max(0.0, self.options.clock() - synced)

    def is_stale(self) -> bool:
        """Trust material or clock sync older than the configured limits."""
        trust, clock = self.trust_age(), self.clock_age()
        return (trust is None or trust > self.options.max_trust_age_s
                or clock is None or clock > self.options.max_clock_age_s)

    @property
    def online(self) -> bool:
        """Whether the next scan will ask the server first."""
        return not self.options.offline and self.uplink.up

    # -- sync, upload --------------------------------------------------------------------------
    def sync(self) -> SyncResult:
        """Clock, JWKS and revocation deltas (a full snapshot when the server says ``full``)."""
        result = sync(self.client, self.material, self.options.clock, overlap=self.options.feed_overlap)
        self.verifier.trust = self.material.state
        self._offset = self.material.clock_offset
        self.uplink.send_request_id = True
        self.uplink.reachable(result.online, result.error)
        if result.ok:
            self.prune()
        return result

    def upload(self, batch_size: int = 500) -> UploadResult:
        """Send the journal's pending records (see ``scanners.upload``)."""
        result = self.uploader.upload(batch_size)
        if result.attempts:
            self.uplink.reachable(result.online, result.error)
        return result

    def prune(self) -> None:
        """Forget replay records and scene state no decision can use any more, and acknowledged
        journal rows beyond the newest ``journal_keep_acknowledged`` (never a pending one)."""
        self.replay.prune()
        self.journal.prune_acknowledged(self.options.journal_keep_acknowledged)
        with self.db.transaction() as conn:
            scene.prune(conn, self.now(), bus_window=self.rules.bus.window_seconds,
                        trip_expiry=self.rules.trip_expiry)

    # -- scanning ------------------------------------------------------------------------------
    def scan(self, code: str, *, direction: str | None = None, offline: bool = False,
             service: str | None = None, location: Mapping[str, float] | None = None) -> ReaderDecision:
        """Decide one scanned code; the journal record is committed before this returns.

        ``direction``: metro gates (entry/exit). ``service``: hall kiosks — take a queue number
        for that service (online only). ``location``: ``{"lat", "lon"}`` of a moving reader.
        """
        started, scanned_at = time.perf_counter(), self.options.clock()
        checked = self.verifier.check(code)
        timings = {"check_ms": _ms(started)}
        request_id, fallback = None, None
        if not offline and self.online:
            asked = time.perf_counter()
            answer, fallback, request_id = self.uplink.ask(code, direction, service)
            timings["online_ms"] = _ms(asked)
            if answer is not None:
                return self._commit(checked, answer, "online", direction, request_id, location,
                                    scanned_at, timings, started, None, stale=False)
        return self._commit(checked, None, "offline", direction, request_id, location, scanned_at,
                            timings, started, fallback, stale=self.is_stale())

    def _commit(self, checked: Decision, answer: dict[str, Any] | None, mode: str,
                direction: str | None, request_id: str | None, location: Mapping[str, float] | None,
                scanned_at: float, timings: dict[str, float], started: float, fallback: str | None,
                *, stale: bool) -> ReaderDecision:
        """One transaction: claim, scene state, journal record. Returns after COMMIT."""
        committing = time.perf_counter()
        claims = checked.claims
        try:
            with self.db.transaction() as conn:
                if answer is not None:
                    decision = self._mirror(conn, checked, answer, direction)
                else:
                    decision = self._decide(conn, checked, direction, stale)
                seq = self.journal.append(self._record(decision, mode, direction, request_id,
                                                       location, scanned_at, stale))
        except sqlite3.Error as exc:
            decision = Decision.deny("degraded", claims, detail=f"journal unavailable: {type(exc).__name__}")
            seq = None
        timings["commit_ms"] = _ms(committing)
        timings["total_ms"] = _ms(started)
        return ReaderDecision(decision.decision, decision.reason, dict(decision.message),
                              dict(decision.data), seq, mode, stale, timings,  # type: ignore[arg-type]
                              decision.detail, request_id, fallback,
                              None if claims is None else claims.to_dict())

    def _decide(self, conn: sqlite3.Connection, checked: Decision, direction: str | None,
                stale: bool) -> Decision:
        if not checked.accepted:
            return checked
        refused = self.rules.refuse(checked.claims, direction, stale=stale)
        if refused is not None:
            return refused
        claimed = self.verifier.claim(checked)  # the replay store joins this transaction
        if not claimed.accepted:
            return claimed
        return self.rules.decide(conn, claimed, direction, self.now())

    def _mirror(self, conn: sqlite3.Connection, checked: Decision, answer: dict[str, Any],
                direction: str | None) -> Decision:
        """The server's answer as a Decision; the code marked used here, scene state mirrored."""
        claims = checked.claims
        if claims is not None:
            self.replay.claim(claims.iss, claims.jti, claims.exp + self.verifier.leeway)
            self.rules.mirror(conn, claims, direction, self.now(), answer)
        data = {k: v for k, v in answer.items() if k not in ("decision", "reason", "message")}
        if answer["decision"] == "accept":
            return Decision.accept(claims, data)  # type: ignore[arg-type]  # claims None: key unknown here
        return Decision.deny(answer["reason"], claims, detail="decided by the server")

    def _record(self, decision: Decision, mode: str, direction: str | None, request_id: str | None,
                location: Mapping[str, float] | None, scanned_at: float, stale: bool) -> dict[str, Any]:
        """The tap record of the POST /v1/taps contract (``seq`` is added by the journal)."""
        claims = decision.claims
        record: dict[str, Any] = {
            "jti": claims.jti if claims else None, "sub": claims.sub if claims else None,
            "iss": claims.iss if claims else self.verifier.issuer,
            "scanned_at": round(scanned_at, 3), "decision": decision.decision,
            "reason": decision.reason, "mode": mode, "stale": stale,
            "trust_version": self.material.feed_version, "clock_offset_s": round(self._offset, 3)}
        age = self.trust_age()
        if age is not None and math.isfinite(age):
            record["trust_age_s"] = round(age, 3)
        if self.kind == "metro" and direction in scene.DIRECTIONS:
            record["direction"] = direction
        if claims is not None:
            record["ent"] = list(claims.ent)
        if request_id is not None:
            record["request_id"] = request_id
        if location is not None:
            record["location"] = {"lat": float(location["lat"]), "lon": float(location["lon"])}
        if decision.data:
            record["result"] = plain_json(decision.data)
        return record

    def pending(self) -> int:
        return self.journal.pending()

    def status(self) -> dict[str, Any]:
        """What the reader is and how it stands; no network."""
        trust_age, clock_age = self.trust_age(), self.clock_age()
        return {
            "terminal_id": self.terminal_id, "kind": self.kind, "site": dict(self.site),
            "base_url": self.client.base_url, "online": self.online,
            "offline_for_s": round(self.uplink.offline_for(), 1),
            "last_online_error": self.db.get("online.last_error"),
            "feed_version": self.material.feed_version, "feed_entries": self.material.entries(),
            "keys": sorted(self.material.keys), "trust_age_s": _round(trust_age),
            "clock_age_s": _round(clock_age), "clock_offset_s": round(self._offset, 3),
            "stale": self.is_stale(), "max_trust_age_s": self.options.max_trust_age_s,
            "max_ttl": self.verifier.max_ttl, "pending": self.pending(),
            "last_seq": self.journal.last_seq(), "replay_cache": len(self.replay),
            "upload_error": self.uploader.last_error(), "request_id": self.uplink.send_request_id}

    def close(self) -> None:
        self.client.close()
        self.db.close()

    def __enter__(self) -> Reader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _first(*values: Any) -> int:
    return int(next(v for v in values if v is not None))


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 3)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)

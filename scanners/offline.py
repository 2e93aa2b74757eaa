"""Scene rules a reader can apply on its own, with the city data the server uses (``app.city``).

| kind | offline | stale trust (older than the limit) |
|---|---|---|
| bus | fare from the code's entitlements (``app.scenes.bus.FareTable``); a second charged tap of the same pseudonym on this vehicle within the window is ``duplicate_tap`` | decide, accept flagged ``stale`` |
| metro | entry opens a local trip, entry with a local trip open is ``passback``; exit accepts and closes any local trip — the fare is settled by the server from the uploaded entry and exit | decide, accept flagged ``stale`` |
| scenic | ``app.scenes.scenic.admits`` (annual pass, the spot's free category, or today's reservation entitlement for the spot), else ``no_reservation``; once per pseudonym per spot per city day at this turnstile; capacity is not counted offline (the server counts at upload) | deny ``degraded`` |
| hall | never: queue numbers need the server — deny ``degraded`` | deny ``degraded`` |

As on the server, an answer about the *gate* (metro without a direction or at an unknown
station, an unknown spot) and ``degraded`` spend nothing; every other answer spends the code.
"""
from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Mapping

from app.city import load
from app.codes.decision import CodeClaims, Decision
from app.scenes.base import local_date
from app.scenes.bus import FareTable
from app.scenes.metro import trip_expiry_seconds
from app.scenes.metro.network import Network, default_network
from app.scenes.scenic import ScenicConfig, admits, city_config

KINDS = ("bus", "metro", "scenic", "hall")
STRICT_KINDS = frozenset({"scenic", "hall"})  # stale trust → degraded instead of a flagged accept
DIRECTIONS = ("entry", "exit")


def rfc3339(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, timezone.utc).isoformat(timespec="seconds")


@dataclass
class OfflineRules:
    """The rules for one terminal (``kind`` and ``site`` from its registration)."""

    kind: str
    site: Mapping[str, str]
    bus: FareTable = field(default_factory=lambda: FareTable.from_config(load("bus")))
    network: Network = field(default_factory=default_network)
    trip_expiry: int = field(default_factory=lambda: trip_expiry_seconds(load("metro")))
    scenic: ScenicConfig = field(default_factory=city_config)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown terminal kind {self.kind!r}")

    def refuse(self, claims: CodeClaims | None, direction: str | None, *, stale: bool) -> Decision | None:
        """A deny that spends nothing (about the gate or the reader's state), or None to go on."""
        if self.kind == "hall":
            return Decision.deny("degraded", claims, detail="hall kiosks decide online only")
        if stale and self.kind in STRICT_KINDS:
            return Decision.deny("degraded", claims, detail="trust material too old to admit offline")
        if self.kind == "metro":
            if direction not in DIRECTIONS:
                return Decision.deny("malformed", claims,
                                     detail="metro gate sent no direction (entry or exit); code not used")
            if self.site.get("station") not in self.network:
                return Decision.deny("degraded", claims, detail="gate station is not in the metro network")
        if self.kind == "scenic" and self.site.get("spot") not in self.scenic.spots:
            return Decision.deny("closed", claims, detail="spot not configured")
        return None

    def decide(self, conn: sqlite3.Connection, checked: Decision, direction: str | None,
               now: float) -> Decision:
        """The scene's answer for an accepted, just-claimed check; changes local state in ``conn``
        (the scan's transaction)."""
        claims = checked.claims
        assert claims is not None and checked.accepted
        if self.kind == "bus":
            return self._bus(conn, checked, claims, now)
        if self.kind == "metro":
            return self._metro(conn, checked, claims, direction, now)
        return self._scenic(conn, checked, claims, now)

    def mirror(self, conn: sqlite3.Connection, claims: CodeClaims, direction: str | None, now: float,
               online: Mapping[str, Any]) -> None:
        """Record an online accept's effect locally, so offline decisions that follow agree."""
        if online.get("decision") != "accept":
            return
        if self.kind == "bus":
            _charge(conn, claims.sub, now)
        elif self.kind == "metro" and direction == "entry":
            _open_trip(conn, claims, self.site.get("station", ""), now)
        elif self.kind == "metro":
            conn.execute("DELETE FROM metro_trips WHERE sub = ?", (claims.sub,))
        elif self.kind == "scenic":
            _admit(conn, self.site.get("spot", ""), now, claims.sub)

    # -- the scenes ----------------------------------------------------------------------------
    def _bus(self, conn: sqlite3.Connection, checked: Decision, claims: CodeClaims, now: float) -> Decision:
        row = conn.execute("SELECT charged_at FROM bus_taps WHERE sub = ?", (claims.sub,)).fetchone()
        if row is not None and 0 <= now - row[0] < self.bus.window_seconds:
            return Decision.deny("duplicate_tap", claims, detail="already charged on this vehicle")
        _charge(conn, claims.sub, now)
        return checked.with_data(fare=self.bus.fare_for(claims.ent).to_dict())

    def _metro(self, conn: sqlite3.Connection, checked: Decision, claims: CodeClaims,
               direction: str | None, now: float) -> Decision:
        station = self.site["station"]
        row = conn.execute("SELECT station, entered_at FROM metro_trips WHERE sub = ?",
                           (claims.sub,)).fetchone()
        is_open = row is not None and now - row[1] < self.trip_expiry
        if direction == "entry":
            if is_open:
                return Decision.deny("passback", claims,
                                     detail=f"open trip from {row[0]} at {rfc3339(row[1])}")
            _open_trip(conn, claims, station, now)
            return checked.with_data(trip={"station": station, "entered_at": rfc3339(now)})
        conn.execute("DELETE FROM metro_trips WHERE sub = ?", (claims.sub,))
        trip = {"station": station, "exited_at": rfc3339(now), "fare": "settled_later"}
        if is_open:
            trip["from"] = row[0]
        return checked.with_data(trip=trip)

    def _scenic(self, conn: sqlite3.Connection, checked: Decision, claims: CodeClaims, now: float) -> Decision:
        spot = self.scenic.spots[self.site["spot"]]
        if not spot.is_open(now):
            return Decision.deny("closed", claims, detail=f"closed at {spot.spot}")
        if not admits(self.scenic, spot, claims.ent, issued_at=claims.iat, scanned_at=now):
            return Decision.deny("no_reservation", claims, detail=f"no reservation for {spot.spot} today")
        if not _admit(conn, spot.spot, now, claims.sub):
            return Decision.deny("already_admitted", claims, detail=f"already admitted at {spot.spot}")
        return checked.with_data(admission={"spot": spot.spot, "remaining": None,
                                            "capacity": "counted_at_upload"})


def _charge(conn: sqlite3.Connection, sub: str, now: float) -> None:
    conn.execute("INSERT INTO bus_taps (sub, charged_at) VALUES (?, ?) ON CONFLICT (sub) DO UPDATE "
                 "SET charged_at = excluded.charged_at", (sub, now))


def _open_trip(conn: sqlite3.Connection, claims: CodeClaims, station: str, now: float) -> None:
    conn.execute("INSERT INTO metro_trips (sub, station, entered_at, jti) VALUES (?, ?, ?, ?) "
                 "ON CONFLICT (sub) DO UPDATE SET station = excluded.station, "
                 "entered_at = excluded.entered_at, jti = excluded.jti",
                 (claims.sub, station, now, claims.jti))


def _admit(conn: sqlite3.Connection, spot: str, now: float, sub: str) -> bool:
    """Record today's admission; False if the pseudonym was admitted here today already."""
    return conn.execute("INSERT OR IGNORE INTO scenic_admitted (spot, day, sub) VALUES (?, ?, ?)",
                        (spot, local_date(now).isoformat(), sub)).rowcount == 1


def prune(conn: sqlite3.Connection, now: float, *, bus_window: int, trip_expiry: int) -> None:
    """Forget state no rule can still use: old taps, expired trips, past days' admissions."""
    conn.execute("DELETE FROM bus_taps WHERE charged_at < ?", (now - bus_window,))
    conn.execute("DELETE FROM metro_trips WHERE entered_at < ?", (now - trip_expiry,))
    conn.execute("DELETE FROM scenic_admitted WHERE day < ?", (local_date(now - 86400).isoformat(),))

"""Drivers for the tap upload tests: readers (terminals with ids), riders (enrolled citizens with
their pseudonyms), records in the tap contract's shape, uploads, and reads of what was stored."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import delete, select

from app.registry import citizens
from app.runtime import Runtime
from app.taps.models import Anomaly, SettledTrip, Tap
from tests.helpers import ADMIN, bearer, enrol
from tests.scenes.metro_support import mint_code

T0 = float(int(time.time()))  # a whole second, recent: codes minted now are valid now


@dataclass(frozen=True)
class Reader:
    token: str
    terminal_id: str
    kind: str
    site: dict[str, str]


@dataclass(frozen=True)
class Rider:
    citizen_id: str
    app_token: str
    sub: str


def runtime_of(app: Flask) -> Runtime:
    return app.extensions["citycode"]  # type: ignore[no-any-return]


def reader(client: FlaskClient, kind: str, **site: str) -> Reader:
    response = client.post("/v1/admin/terminals", headers=ADMIN, json={"kind": kind, "site": site})
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    return Reader(body["terminal_token"], body["terminal_id"], kind, site)


def gate(client: FlaskClient, station: str) -> Reader:
    return reader(client, "metro", station=station)


def bus(client: FlaskClient, vehicle: str = "鲁B-10001", line: str = "321") -> Reader:
    return reader(client, "bus", line=line, vehicle=vehicle)


def rider(app: Flask, client: FlaskClient) -> Rider:
    enrolled = enrol(client)
    with runtime_of(app).db.session() as session:
        sub = citizens.get(session, enrolled["citizen_id"]).pseudonym
    return Rider(enrolled["citizen_id"], enrolled["app_token"], sub)


_jti_counter = iter(range(1, 10**9))


def record(seq: int, sub: str | None, at: float | str, *, jti: str | None = None,
           decision: str = "accept", reason: str = "ok", **fields: Any) -> dict[str, Any]:
    """One tap record; an accept gets a made-up jti unless one is given."""
    if jti is None and sub is not None:
        jti = f"jti-{next(_jti_counter):06d}"
    return {"seq": seq, "jti": jti, "sub": sub, "scanned_at": at, "decision": decision,
            "reason": reason, **fields}


def upload(client: FlaskClient, who: Reader, records: list[dict[str, Any]]) -> Any:
    return client.post("/v1/taps", headers=bearer(who.token), json={"records": records})


def uploaded(client: FlaskClient, who: Reader, records: list[dict[str, Any]]) -> dict[str, Any]:
    response = upload(client, who, records)
    assert response.status_code == 200, response.get_json()
    return response.get_json()  # type: ignore[no-any-return]


def code_for(app: Flask, who: Rider, *entitlements: str) -> tuple[str, str]:
    """A real code of the rider's (code, jti), as the app would show it."""
    from app.codes.wire import b64url_decode, json_object

    code = mint_code(app, who.sub, entitlements)
    return code, json_object(b64url_decode(code.split(".")[1].encode()))["jti"]


def taps(app: Flask) -> list[tuple[Any, ...]]:
    """What is stored, independent of ids and arrival: one tuple per record."""
    with runtime_of(app).db.session() as session:
        rows = session.scalars(select(Tap).order_by(Tap.terminal_id, Tap.seq))
        return [(t.terminal_id, t.seq, t.jti, t.sub, t.server_at, t.decision, t.reason, t.direction,
                 t.mode, t.digest, t.pending_since) for t in rows]


def trips(app: Flask) -> list[SettledTrip]:
    with runtime_of(app).db.session() as session:
        return list(session.scalars(select(SettledTrip).order_by(SettledTrip.anchor_at)))


def anomalies(app: Flask) -> list[Anomaly]:
    with runtime_of(app).db.session() as session:
        return list(session.scalars(select(Anomaly).order_by(Anomaly.id)))


def forget_uploads(app: Flask) -> None:
    """Empty the tap tables (to replay the same uploads another way)."""
    with runtime_of(app).db.session() as session:
        for table in (SettledTrip, Anomaly, Tap):
            session.execute(delete(table))

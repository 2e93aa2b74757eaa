"""Scenic reservations as dated entitlements: a code minted on city day D carries the reservations
for D (``rla`` for Laoshan …); revoking one enters the feed only when it takes today's entitlement
away — reservations appearing or lapsing with the date never look like revocations."""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app.audit import log as audit
from app.city import CITY_TZ
from app.codes.wire import b64url_decode, entitlement_names, json_object
from app.db.models import RevocationEvent
from app.registry import credentials, entitlements
from app.runtime import Runtime
from tests.helpers import bearer, credential, enrol, issuer

DAY = date(2027, 5, 1)
NEXT, BEFORE = DAY + timedelta(days=1), DAY - timedelta(days=1)


def at(day: date, hh: int, mm: int = 0, ss: int = 0) -> datetime:
    return datetime.combine(day, time(hh, mm, ss), CITY_TZ)


def runtime_of(app: Flask) -> Runtime:
    return app.extensions["citycode"]  # type: ignore[no-any-return]


def tourism(client: FlaskClient) -> str:
    return issuer(client, "scenic_reservation", "scenic_annual_pass", name="青岛市文化和旅游局")


def reserve(client: FlaskClient, bureau: str, person: dict[str, Any], spot: str, day: date) -> str:
    issued = credential(client, bureau, person["citizen_id"], "scenic_reservation", spot=spot,
                        date=day.isoformat())
    return issued["credential_id"]  # type: ignore[no-any-return]


def carried(app: Flask, person: dict[str, Any], minted_at: datetime) -> tuple[str, ...]:
    """The entitlement names inside a code minted for ``person`` at ``minted_at``."""
    code = runtime_of(app).minter.code_for(person["citizen_id"], now=minted_at.timestamp()).code
    return entitlement_names(json_object(b64url_decode(code.split(".")[1].encode()))["ent"])


def revoke_at(app: Flask, credential_id: str, moment: datetime) -> None:
    with runtime_of(app).db.session() as session:
        issuer_id = credentials.get(session, credential_id).issuer_id
        credentials.revoke(session, issuer_id, credential_id, None, now=moment)


def feed(app: Flask) -> list[tuple[str, str, int]]:
    with runtime_of(app).db.session() as session:
        rows = session.scalars(select(RevocationEvent).order_by(RevocationEvent.version)).all()
        return [(r.kind, r.ref.rsplit("/", 1)[1], r.at) for r in rows]


def test_derive_gives_a_reservation_on_its_own_day_only() -> None:
    held = [("scenic_reservation", {"spot": "laoshan", "date": DAY.isoformat()}),
            ("scenic_reservation", {"spot": "jimo_old_town", "date": NEXT.isoformat()}),
            ("scenic_reservation", {"spot": "taishan", "date": DAY.isoformat()}),  # not a city spot
            ("scenic_reservation", {"spot": "zhanshan_temple", "date": "someday"}),
            ("student_card", {})]
    assert entitlements.derive(held, day=DAY) == ("rla", "stu")
    assert entitlements.derive(held, day=NEXT) == ("rjm", "stu")
    assert entitlements.derive(held, day=BEFORE) == ("stu",)


def test_code_minted_on_the_reserved_day_carries_the_spots_entitlement(app: Flask, client: FlaskClient) -> None:
    person = enrol(client)
    bureau = tourism(client)
    reserve(client, bureau, person, "laoshan", DAY)
    reserve(client, bureau, person, "zhanshan_temple", NEXT)
    assert carried(app, person, at(BEFORE, 23, 59, 59)) == ()
    assert carried(app, person, at(DAY, 0, 0, 0)) == ("rla",)
    assert carried(app, person, at(DAY, 23, 59, 59)) == ("rla",)
    assert carried(app, person, at(NEXT, 0, 0, 0)) == ("rzt",)
    # 07:59:59 and 08:00:00 in Shanghai straddle UTC midnight: still the same city day.
    assert carried(app, person, at(DAY, 7, 59, 59)) == carried(app, person, at(DAY, 8)) == ("rla",)


def test_me_lists_todays_reservation_entitlement(client: FlaskClient) -> None:
    person = enrol(client)
    bureau = tourism(client)
    today = datetime.now(CITY_TZ).date()
    reserve(client, bureau, person, "jimo_old_town", today + timedelta(days=1))
    assert client.get("/v1/me", headers=bearer(person["app_token"])).get_json()["entitlements"] == []
    reserve(client, bureau, person, "laoshan", today)
    assert client.get("/v1/me", headers=bearer(person["app_token"])).get_json()["entitlements"] == ["rla"]


def test_revoking_todays_reservation_enters_the_feed_once(app: Flask, client: FlaskClient) -> None:
    person = enrol(client)
    reservation = reserve(client, tourism(client), person, "laoshan", DAY)
    moment = at(DAY, 10, 30, 15)
    revoke_at(app, reservation, moment)
    assert feed(app) == [("entitlement_revoked", "rla", int(moment.timestamp()))]
    with runtime_of(app).db.session() as session:  # stored in UTC, not as Shanghai wall time
        assert audit.utc(credentials.get(session, reservation).revoked_at) == moment
    revoke_at(app, reservation, at(DAY, 11))  # already revoked: nothing more
    assert len(feed(app)) == 1


def test_revoking_a_reservation_for_another_day_records_nothing(app: Flask, client: FlaskClient) -> None:
    person = enrol(client)
    bureau = tourism(client)
    tomorrows = reserve(client, bureau, person, "laoshan", NEXT)
    yesterdays = reserve(client, bureau, person, "laoshan", BEFORE)
    revoke_at(app, tomorrows, at(DAY, 12))
    revoke_at(app, yesterdays, at(DAY, 12))
    assert feed(app) == []


def test_revoking_at_the_first_second_after_its_day_records_nothing(app: Flask, client: FlaskClient) -> None:
    person = enrol(client)
    reservation = reserve(client, tourism(client), person, "laoshan", DAY)
    revoke_at(app, reservation, at(NEXT, 0, 0, 0))
    assert feed(app) == []


def test_revoking_one_of_two_reservations_for_the_same_spot_and_day_records_nothing(
        app: Flask, client: FlaskClient) -> None:
    person = enrol(client)
    bureau = tourism(client)
    first = reserve(client, bureau, person, "laoshan", DAY)
    second = reserve(client, bureau, person, "laoshan", DAY)
    revoke_at(app, first, at(DAY, 9))
    assert feed(app) == []
    revoke_at(app, second, at(DAY, 9, 5))
    assert [entry[:2] for entry in feed(app)] == [("entitlement_revoked", "rla")]


def test_revoking_the_annual_pass_does_not_touch_todays_reservation(app: Flask, client: FlaskClient) -> None:
    person = enrol(client)
    bureau = tourism(client)
    reserve(client, bureau, person, "laoshan", DAY)
    pass_id = credential(client, bureau, person["citizen_id"], "scenic_annual_pass")["credential_id"]
    revoke_at(app, pass_id, at(DAY, 9))
    assert [entry[:2] for entry in feed(app)] == [("entitlement_revoked", "sap")]
    assert carried(app, person, at(DAY, 9, 1)) == ("rla",)


def test_a_reservation_valid_from_noon_is_carried_from_noon(app: Flask, client: FlaskClient) -> None:
    person = enrol(client)
    response = client.post("/v1/issuer/credentials", headers=bearer(tourism(client)), json={
        "citizen_id": person["citizen_id"], "type": "scenic_reservation", "number": "LS-1",
        "attributes": {"spot": "laoshan", "date": DAY.isoformat()},
        "valid_from": at(DAY, 12).astimezone(timezone.utc).isoformat()})
    assert response.status_code == 201, response.get_json()
    assert carried(app, person, at(DAY, 11, 59, 59)) == ()
    assert carried(app, person, at(DAY, 12)) == ("rla",)

"""Each worker's trust state follows the database feed: at once when announced, soon when not."""
from __future__ import annotations

from flask import Flask

from app.registry import revocations
from app.verification.trust_feed import GENERATION_KEY, FeedTrust, announce


def _record(app: Flask, kind: str, ref: str) -> None:
    with app.extensions["citycode"].db.session() as session:
        revocations.record(session, kind, ref)


def test_announced_change_is_seen_by_the_next_verification(app: Flask) -> None:
    rt = app.extensions["citycode"]
    feed = FeedTrust(rt.db, rt.redis, max_age=3600)
    assert not feed.current().is_suspended("pseudo1")
    _record(app, "citizen_suspended", "pseudo1")
    announce(rt.redis)
    assert feed.current().is_suspended("pseudo1")
    _record(app, "citizen_restored", "pseudo1")
    announce(rt.redis)
    assert not feed.current().is_suspended("pseudo1")


def test_unannounced_change_is_picked_up_by_the_safety_net(app: Flask) -> None:
    rt = app.extensions["citycode"]
    feed = FeedTrust(rt.db, rt.redis, max_age=3600)
    feed.current()
    _record(app, "entitlement_revoked", "pseudo2/stu")
    assert feed.current().revoked_entitlements("pseudo2", issued_at=0) == frozenset()
    feed.max_age = 0  # the interval has passed
    assert feed.current().revoked_entitlements("pseudo2", issued_at=0) == frozenset({"stu"})


def test_lost_generation_key_makes_workers_reread(app: Flask) -> None:
    rt = app.extensions["citycode"]
    feed = FeedTrust(rt.db, rt.redis, max_age=3600)
    feed.current()
    _record(app, "citizen_suspended", "pseudo3")
    rt.redis.delete(GENERATION_KEY)  # e.g. Redis restarted without it
    assert feed.current().is_suspended("pseudo3")

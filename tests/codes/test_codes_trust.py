"""StaticTrust and the revocation feed entries offline readers apply to it."""
from __future__ import annotations

from typing import Any

import pytest

from app.codes.trust import StaticTrust

from codes_support import T0


def test_feed_suspends_and_restores_a_citizen() -> None:
    trust = StaticTrust()
    trust.apply([{"kind": "citizen_suspended", "id": "p_1", "at": T0}])
    assert trust.is_suspended("p_1") and not trust.is_suspended("p_2")
    trust.apply([{"kind": "citizen_restored", "id": "p_1", "at": T0 + 5}])
    assert not trust.is_suspended("p_1")


def test_feed_applies_entries_in_order() -> None:
    trust = StaticTrust()
    count = trust.apply([{"kind": "citizen_suspended", "id": "p_1", "at": T0},
                         {"kind": "citizen_restored", "id": "p_1", "at": T0 + 1},
                         {"kind": "citizen_suspended", "id": "p_1", "at": T0 + 2}])
    assert count == 3 and trust.is_suspended("p_1")


def test_revoked_entitlement_applies_to_codes_issued_at_or_before_the_revocation() -> None:
    trust = StaticTrust()
    trust.apply([{"kind": "entitlement_revoked", "id": "p_1/sen", "at": T0}])
    assert trust.revoked_entitlements("p_1", issued_at=T0 - 1) == {"sen"}
    assert trust.revoked_entitlements("p_1", issued_at=T0) == {"sen"}
    assert trust.revoked_entitlements("p_1", issued_at=T0 + 1) == frozenset()
    assert trust.revoked_entitlements("p_2", issued_at=T0 - 1) == frozenset()


def test_latest_revocation_of_an_entitlement_wins() -> None:
    trust = StaticTrust()
    trust.apply([{"kind": "entitlement_revoked", "id": "p_1/sen", "at": T0 + 100},
                 {"kind": "entitlement_revoked", "id": "p_1/sen", "at": T0}])
    assert trust.revoked_entitlements("p_1", issued_at=T0 + 50) == {"sen"}


def test_feed_times_may_be_rfc3339_or_epoch_seconds() -> None:
    trust = StaticTrust()
    trust.apply([{"kind": "entitlement_revoked", "id": "p_1/sen", "at": "2027-01-15T08:00:00Z"},
                 {"kind": "entitlement_revoked", "id": "p_1/stu", "at": "2027-01-15T16:00:00+08:00"}])
    assert trust.revoked_entitlements("p_1", issued_at=T0) == {"sen", "stu"}  # T0 = 08:00Z
    assert trust.revoked_entitlements("p_1", issued_at=T0 + 1) == frozenset()


def test_code_revocation_splits_at_the_last_slash() -> None:
    trust = StaticTrust()
    trust.apply([{"kind": "code_revoked", "id": "https://cc.example/qd/abcdefghijkl", "at": T0}])
    assert trust.is_code_revoked("https://cc.example/qd", "abcdefghijkl")
    assert not trust.is_code_revoked("https://cc.example", "qd/abcdefghijkl")


@pytest.mark.parametrize("entry", [
    {"kind": "credential_revoked", "id": "x", "at": T0},
    {"kind": "entitlement_revoked", "id": "no-slash", "at": T0},
    {"kind": "entitlement_revoked", "id": "p_1/", "at": T0},
    {"kind": "code_revoked", "id": "/jti", "at": T0},
    {"kind": "citizen_suspended", "id": "", "at": T0},
    {"kind": "citizen_suspended", "id": 7, "at": T0},
    {"kind": "citizen_suspended", "id": "p_1", "at": "yesterday"},
    {"kind": "citizen_suspended", "id": "p_1", "at": "2027-01-15T08:00:00"},
    {"kind": "citizen_suspended", "id": "p_1", "at": True},
    {"kind": "citizen_suspended", "id": "p_1", "at": float("nan")},
    {"kind": "citizen_suspended", "id": "p_1", "at": float("inf")},
    {"kind": "citizen_suspended", "id": "p_1"},
    ["citizen_suspended", "p_1", T0],
])
def test_a_bad_entry_rejects_the_whole_batch(entry: Any) -> None:
    trust = StaticTrust()
    good = {"kind": "citizen_suspended", "id": "p_9", "at": T0}
    with pytest.raises(ValueError):
        trust.apply([good, entry])
    assert not trust.is_suspended("p_9")  # nothing applied


def test_constructor_takes_initial_state() -> None:
    trust = StaticTrust(suspended=["p_1"], revoked_entitlements={("p_2", "stu"): T0},
                        revoked_codes=[("cc", "abcdefghijkl")])
    assert trust.is_suspended("p_1")
    assert trust.revoked_entitlements("p_2", issued_at=T0) == {"stu"}
    assert trust.is_code_revoked("cc", "abcdefghijkl")

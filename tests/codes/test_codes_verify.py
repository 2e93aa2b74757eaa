"""The verification pipeline on genuine codes: accept, time, trust, replay, key handling."""
from __future__ import annotations

from typing import Any, Callable

import pytest

from app.codes.decision import Decision
from app.codes.errors import ReplayUnavailable
from app.codes.mint import MintedCode
from app.codes.trust import StaticTrust
from app.codes.verify import Verifier
from app.signing.keyring import KeyRing

from codes_support import (DROP, ENT_NAMES, ISSUER, LEEWAY, MAX_TTL, SUBJECT, T0, TTL, Forge,
                           FrozenClock)


def test_fresh_code_is_accepted_with_its_claims(verifier: Verifier, genuine: MintedCode,
                                                ring: KeyRing) -> None:
    decision = verifier.verify(genuine.code)
    assert (decision.decision, decision.reason) == ("accept", "ok")
    assert decision.claims is not None
    assert decision.claims.to_dict() == {
        "iss": ISSUER, "sub": SUBJECT, "iat": T0, "exp": T0 + TTL, "jti": genuine.jti,
        "ent": list(ENT_NAMES), "kid": ring.current_kid}


def test_bytes_input_is_accepted_like_text(verifier: Verifier, genuine: MintedCode) -> None:
    assert verifier.verify(genuine.code.encode()).decision == "accept"


def test_eddsa_code_is_accepted(make_verifier: Callable[..., Verifier], ed_ring: KeyRing,
                                issue: Callable[..., MintedCode]) -> None:
    verifier = make_verifier(keys=lambda: ed_ring.verification_keys)
    assert verifier.verify(issue(ed_ring).code).decision == "accept"


def test_pinned_algorithms_exclude_eddsa_when_asked(make_verifier: Callable[..., Verifier],
                                                    ed_ring: KeyRing,
                                                    issue: Callable[..., MintedCode]) -> None:
    verifier = make_verifier(keys=lambda: ed_ring.verification_keys, algorithms=("ES256",))
    assert verifier.verify(issue(ed_ring).code).reason == "bad_signature"


@pytest.mark.parametrize("options", [{"algorithms": ("ES256", "HS256")}, {"algorithms": ()},
                                     {"algorithms": ("none",)}, {"max_ttl": 0}, {"leeway": -1}])
def test_verifier_refuses_unsafe_configuration(make_verifier: Callable[..., Verifier],
                                               options: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        make_verifier(**options)


def test_second_use_is_replayed(verifier: Verifier, genuine: MintedCode) -> None:
    assert verifier.verify(genuine.code).decision == "accept"
    second = verifier.verify(genuine.code)
    assert (second.decision, second.reason) == ("deny", "replayed")
    assert second.claims is not None and second.claims.jti == genuine.jti


def test_check_does_not_use_the_code_up(verifier: Verifier, genuine: MintedCode) -> None:
    assert verifier.check(genuine.code).decision == "accept"
    assert verifier.check(genuine.code).decision == "accept"
    assert verifier.verify(genuine.code).decision == "accept"
    assert verifier.verify(genuine.code).reason == "replayed"


def test_claim_passes_denies_through_untouched(verifier: Verifier) -> None:
    denied = Decision.deny("expired")
    assert verifier.claim(denied) is denied


def test_replay_store_outage_is_degraded_not_accept(make_verifier: Callable[..., Verifier],
                                                    genuine: MintedCode) -> None:
    class Down:
        def claim(self, iss: str, jti: str, expires_at: float, sub: str = "") -> bool:
            raise ReplayUnavailable("down")

    decision = make_verifier(replay=Down()).verify(genuine.code)
    assert (decision.decision, decision.reason) == ("deny", "degraded")
    assert decision.claims is not None  # authenticity was checked before the store was asked


def test_replay_record_lasts_until_expiry_plus_leeway(make_verifier: Callable[..., Verifier],
                                                      genuine: MintedCode) -> None:
    seen: list[tuple[str, str, float]] = []

    class Recorder:
        def claim(self, iss: str, jti: str, expires_at: float, sub: str = "") -> bool:
            seen.append((iss, jti, expires_at))
            return True

    make_verifier(replay=Recorder()).verify(genuine.code)
    assert seen == [(ISSUER, genuine.jti, T0 + TTL + LEEWAY)]


# -- time --------------------------------------------------------------------------------------
def test_code_is_accepted_up_to_expiry_plus_leeway(verifier: Verifier, genuine: MintedCode,
                                                   clock: FrozenClock) -> None:
    clock.now = genuine.expires_at + LEEWAY
    assert verifier.verify(genuine.code).decision == "accept"


def test_code_is_expired_one_second_after_expiry_plus_leeway(verifier: Verifier,
                                                             genuine: MintedCode,
                                                             clock: FrozenClock) -> None:
    clock.now = genuine.expires_at + LEEWAY + 1
    decision = verifier.verify(genuine.code)
    assert decision.reason == "expired"
    assert decision.claims is not None and decision.claims.exp == genuine.expires_at


def test_code_from_the_future_beyond_leeway_is_not_yet_valid(verifier: Verifier,
                                                             issue: Callable[..., MintedCode],
                                                             clock: FrozenClock) -> None:
    assert verifier.verify(issue(now=clock.now + LEEWAY + 1).code).reason == "not_yet_valid"


def test_code_from_the_future_within_leeway_is_accepted(verifier: Verifier,
                                                        issue: Callable[..., MintedCode],
                                                        clock: FrozenClock) -> None:
    assert verifier.verify(issue(now=clock.now + LEEWAY).code).decision == "accept"


def test_nbf_in_the_future_is_not_yet_valid(verifier: Verifier, forge: Forge,
                                            clock: FrozenClock) -> None:
    claims = forge.claims(clock.now, nbf=int(clock.now) + LEEWAY + 1)
    assert verifier.verify(forge.sign(forge.header(), claims)).reason == "not_yet_valid"


def test_lifetime_longer_than_max_ttl_is_malformed(verifier: Verifier, forge: Forge,
                                                   clock: FrozenClock) -> None:
    claims = forge.claims(clock.now, exp=int(clock.now) + MAX_TTL + 1)
    assert verifier.verify(forge.sign(forge.header(), claims)).reason == "malformed"
    claims = forge.claims(clock.now, exp=int(clock.now) + MAX_TTL)
    assert verifier.verify(forge.sign(forge.header(), claims)).decision == "accept"


@pytest.mark.parametrize("lifetime", [0, -1])
def test_code_expiring_when_or_before_it_is_issued_is_malformed(verifier: Verifier, forge: Forge,
                                                                clock: FrozenClock,
                                                                lifetime: int) -> None:
    claims = forge.claims(clock.now, exp=int(clock.now) + lifetime)
    assert verifier.verify(forge.sign(forge.header(), claims)).reason == "malformed"


def test_expired_code_does_not_record_a_use(verifier: Verifier, genuine: MintedCode,
                                            clock: FrozenClock, replay: Any) -> None:
    clock.now = genuine.expires_at + LEEWAY + 1
    verifier.verify(genuine.code)
    assert len(replay) == 0


# -- trust -------------------------------------------------------------------------------------
def test_suspended_citizen_is_denied(verifier: Verifier, genuine: MintedCode,
                                     trust: StaticTrust) -> None:
    trust.suspend(SUBJECT)
    decision = verifier.verify(genuine.code)
    assert decision.reason == "suspended"
    trust.restore(SUBJECT)
    assert verifier.verify(genuine.code).decision == "accept"  # the deny did not use it up


def test_revoked_code_is_denied(verifier: Verifier, genuine: MintedCode, trust: StaticTrust) -> None:
    trust.revoke_code(ISSUER, genuine.jti)
    assert verifier.verify(genuine.code).reason == "revoked"


def test_revoked_entitlement_drops_out_of_codes_issued_before_the_revocation(
        verifier: Verifier, issue: Callable[..., MintedCode], trust: StaticTrust,
        clock: FrozenClock) -> None:
    before = issue()
    clock.advance(10)
    trust.revoke_entitlement(SUBJECT, "sen", at=clock.now)
    clock.advance(10)
    after = issue()  # e.g. the entitlement was granted again by a new credential
    decision = verifier.verify(before.code)
    assert decision.decision == "accept"
    assert decision.claims is not None and decision.claims.ent == ("sap", "stu")
    decision = verifier.verify(after.code)
    assert decision.claims is not None and decision.claims.ent == ("sap", "sen", "stu")


def test_entitlement_revoked_in_the_second_a_code_was_issued_drops_out(
        verifier: Verifier, genuine: MintedCode, trust: StaticTrust) -> None:
    trust.revoke_entitlement(SUBJECT, "stu", at=genuine.issued_at)
    decision = verifier.verify(genuine.code)
    assert decision.claims is not None and decision.claims.ent == ("sap", "sen")


def test_other_citizens_revocations_do_not_matter(verifier: Verifier, genuine: MintedCode,
                                                  trust: StaticTrust) -> None:
    trust.suspend("p_someone_else_1")
    trust.revoke_entitlement("p_someone_else_1", "stu", at=genuine.issued_at + 1)
    decision = verifier.verify(genuine.code)
    assert decision.claims is not None and decision.claims.ent == ENT_NAMES


# -- keys --------------------------------------------------------------------------------------
def test_keys_are_read_on_every_verification(make_verifier: Callable[..., Verifier],
                                             ring: KeyRing, ed_ring: KeyRing,
                                             issue: Callable[..., MintedCode]) -> None:
    published: dict[str, Any] = dict(ring.verification_keys)
    verifier = make_verifier(keys=lambda: published)
    later = issue(ed_ring)
    assert verifier.verify(later.code).reason == "unknown_key"
    published.update(ed_ring.verification_keys)  # the new key is published
    assert verifier.verify(later.code).decision == "accept"
    code = issue().code
    published.clear()  # every key withdrawn
    assert verifier.verify(code).reason == "unknown_key"


def test_unknown_extra_claims_and_header_members_are_ignored(verifier: Verifier, forge: Forge,
                                                             clock: FrozenClock) -> None:
    code = forge.sign(forge.header(cty="x"), forge.claims(clock.now, aud="anyone", extra=[1]))
    assert verifier.verify(code).decision == "accept"


def test_no_entitlements_is_an_empty_string_and_accepted(verifier: Verifier, forge: Forge,
                                                         clock: FrozenClock) -> None:
    decision = verifier.verify(forge.sign(forge.header(), forge.claims(clock.now, ent="")))
    assert decision.decision == "accept" and decision.claims is not None
    assert decision.claims.ent == ()


@pytest.mark.parametrize("ent,names", [
    ("g", ("hg",)), ("eg", ("hg", "sen")), ("ge", ("hg", "sen")), ("pse", ("sap", "sen", "stu")),
    ("dregy", ("dis", "hg", "hr", "hy", "sen")), ("srypgde", ("dis", "hg", "hr", "hy", "sap", "sen", "stu")),
])
def test_entitlement_letters_decode_to_sorted_names_in_any_order(
        verifier: Verifier, forge: Forge, clock: FrozenClock, ent: str, names: tuple[str, ...]) -> None:
    decision = verifier.verify(forge.sign(forge.header(), forge.claims(clock.now, ent=ent)))
    assert decision.decision == "accept" and decision.claims is not None
    assert decision.claims.ent == names


@pytest.mark.parametrize("entitlements,names", [
    ((), ()), (("sen", "hg"), ("hg", "sen")), (["hr"], ("hr",)),
    (("stu", "sen", "dis", "sap", "hg", "hy", "hr"), ("dis", "hg", "hr", "hy", "sap", "sen", "stu")),
])
def test_minted_entitlements_come_back_as_sorted_names(verifier: Verifier,
                                                       issue: Callable[..., MintedCode],
                                                       entitlements: tuple[str, ...],
                                                       names: tuple[str, ...]) -> None:
    decision = verifier.verify(issue(entitlements=entitlements).code)
    assert decision.claims is not None and decision.claims.ent == names


def test_missing_typ_is_wrong_type(verifier: Verifier, forge: Forge, clock: FrozenClock) -> None:
    code = forge.sign(forge.header(typ=DROP), forge.claims(clock.now))
    assert verifier.verify(code).reason == "wrong_type"

"""Property tests: arbitrary input never raises and is never accepted; any change to a genuine code
is never accepted."""
from __future__ import annotations

import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.codes.mint import mint
from app.codes.replay import MemoryReplayStore
from app.codes.trust import StaticTrust
from app.codes.verify import Verifier

from codes_support import ENTITLEMENTS, ISSUER, MAX_TTL, SUBJECT, T0, TTL, load_ring

# No example database: failing examples are printed, not stored under .hypothesis/.
FUZZ = settings(database=None, max_examples=400, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])
B64URL = string.ascii_letters + string.digits + "-_"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Verifier, str]:
    """Module-scoped (Hypothesis re-runs a test body many times; function fixtures would not reset)."""
    ring = load_ring(tmp_path_factory.mktemp("fuzz") / "keys", "ES256")
    code = mint(ring, issuer=ISSUER, subject=SUBJECT, entitlements=ENTITLEMENTS, ttl_seconds=TTL,
                now=T0).code
    keys = ring.verification_keys
    verifier = Verifier(lambda: keys, StaticTrust(), MemoryReplayStore(lambda: T0), ISSUER,
                        max_ttl=MAX_TTL, clock=lambda: T0)
    return verifier, code


def _never_accepted(verifier: Verifier, candidate: object) -> None:
    decision = verifier.verify(candidate)  # type: ignore[arg-type]
    assert decision.decision == "deny"
    assert decision.claims is None


@FUZZ
@given(data=st.binary(max_size=2048))
def test_random_bytes_never_raise_nor_pass(world: tuple[Verifier, str], data: bytes) -> None:
    _never_accepted(world[0], data)


@FUZZ
@given(text=st.one_of(st.text(max_size=2048),
                      st.text(alphabet=st.characters(max_codepoint=127), max_size=2048)))
def test_random_text_never_raises_nor_passes(world: tuple[Verifier, str], text: str) -> None:
    _never_accepted(world[0], text)


@FUZZ
@given(parts=st.lists(st.text(alphabet=B64URL + "=.", max_size=120), min_size=1, max_size=5))
def test_random_jws_shaped_text_never_passes(world: tuple[Verifier, str], parts: list[str]) -> None:
    _never_accepted(world[0], ".".join(parts))


@FUZZ
@given(position=st.integers(min_value=0), replacement=st.text(
    alphabet=B64URL + "=. \n\u00e9", min_size=0, max_size=3), cut=st.integers(min_value=0, max_value=3))
def test_any_change_to_a_genuine_code_is_never_accepted(world: tuple[Verifier, str], position: int,
                                                        replacement: str, cut: int) -> None:
    verifier, code = world
    position %= len(code) + 1
    mutated = code[:position] + replacement + code[position + cut:]
    decision = verifier.check(mutated)  # check: no use is recorded, the genuine stays fresh
    if mutated == code:
        assert decision.decision == "accept"
    else:
        assert decision.decision == "deny"

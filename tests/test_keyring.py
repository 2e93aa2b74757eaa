"""The key ring: generate, rotate, publication window, JWKS, tamper checks, cache and concurrency."""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import stat
import threading
import time
from pathlib import Path
from typing import Any

import jwt as pyjwt
import pytest
from joserfc import jwt as jose_jwt
from joserfc.errors import JoseError, SecurityWarning
from joserfc.jwk import KeySet

from app.signing import keyfiles, keyring
from app.signing.keyfiles import KeyFileError
from app.signing.keyring import CURRENT, NEXT, RETIRED, KeyRing, KeyRingCache, KeyStore

WINDOW = 65  # code TTL 60 s + 5 s clock leeway, the service default


class FakeTime:
    """Stands in for the ``time`` module inside ``app.signing.keyring``: time moves only when told."""

    def __init__(self) -> None:
        self.now = float(int(time.time()))

    def time(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeTime:
    fake = FakeTime()
    monkeypatch.setattr(keyring, "time", fake)
    return fake


@pytest.fixture
def store(tmp_path: Path) -> KeyStore:
    return KeyStore(tmp_path / "keys", retire_after_seconds=WINDOW)


def _states(store: KeyStore) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {CURRENT: [], NEXT: [], RETIRED: []}
    for entry in store.list():
        found[entry["state"]].append(entry["kid"])
    return found


def _only(kids: list[str]) -> str:
    assert len(kids) == 1, kids
    return kids[0]


def _sign(ring: KeyRing, claims: dict[str, Any] | None = None) -> str:
    return pyjwt.encode(claims or {"sub": "x"}, ring.signing_key, algorithm=ring.current.algorithm,
                        headers={"kid": ring.current_kid})


def _verify_with_jwks_only(token: str, jwks: dict[str, Any], algorithm: str = "ES256") -> dict[str, Any]:
    """What any outside reader does: a standard JOSE library and nothing but the JWKS document."""
    document = json.loads(json.dumps(jwks))  # exactly what /.well-known/jwks.json would carry
    return dict(jose_jwt.decode(token, KeySet.import_key_set(document), algorithms=[algorithm]).claims)


# -- files and permissions -------------------------------------------------------------------

def test_generate_creates_the_keys_folder_mode_0700_and_private_files_mode_0600(store: KeyStore) -> None:
    old_umask = os.umask(0)
    try:
        store.generate()
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(store.directory.stat().st_mode) == 0o700
    privates = sorted(store.directory.glob("*.private.pem"))
    assert len(privates) == 2
    for path in privates:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_an_existing_keys_folder_open_to_others_is_closed_to_0700(store: KeyStore) -> None:
    store.directory.mkdir(mode=0o755)
    os.chmod(store.directory, 0o755)
    store.generate()
    assert stat.S_IMODE(store.directory.stat().st_mode) == 0o700


def test_files_on_disk_are_named_after_each_kid(store: KeyStore) -> None:
    store.generate()
    states = _states(store)
    names = {p.name for p in store.directory.iterdir()}
    for kid in states[CURRENT] + states[NEXT]:
        assert {f"{kid}.private.pem", f"{kid}.public.pem"} <= names
    assert "keyring.json" in names
    assert not [n for n in names if n.endswith(".tmp")]


def test_current_private_key_readable_by_group_makes_load_fail_with_the_chmod_hint(store: KeyStore) -> None:
    store.generate()
    path = store.directory / f"{_only(_states(store)[CURRENT])}.private.pem"
    os.chmod(path, 0o640)
    with pytest.raises(KeyFileError, match="chmod 600"):
        store.load()


# -- generate --------------------------------------------------------------------------------

@pytest.mark.parametrize("algorithm", ["ES256", "EdDSA"])
def test_generate_creates_exactly_one_current_and_one_next_key(store: KeyStore, algorithm: str) -> None:
    store.generate(algorithm)
    states = _states(store)
    assert len(states[CURRENT]) == 1 and len(states[NEXT]) == 1 and states[RETIRED] == []
    assert {e["alg"] for e in store.list()} == {algorithm}
    ring = store.load()
    assert ring.current_kid == states[CURRENT][0]
    assert sorted(ring.published_kids) == sorted(states[CURRENT] + states[NEXT])


def test_generate_on_an_existing_ring_changes_nothing_without_force(store: KeyStore) -> None:
    store.generate()
    before = store.list()
    files_before = sorted(p.name for p in store.directory.iterdir())
    assert store.generate() == before
    assert store.generate("EdDSA") == before
    assert store.list() == before
    assert sorted(p.name for p in store.directory.iterdir()) == files_before


def test_generate_with_force_retires_every_key_but_keeps_it_published_for_the_window(
        store: KeyStore, clock: FakeTime) -> None:
    store.generate()
    old = _states(store)
    store.generate(force=True)
    states = _states(store)
    assert sorted(states[RETIRED]) == sorted(old[CURRENT] + old[NEXT])
    assert len(states[CURRENT]) == 1 and len(states[NEXT]) == 1
    assert set(states[CURRENT] + states[NEXT]).isdisjoint(old[CURRENT] + old[NEXT])
    for kid in states[RETIRED]:
        assert not (store.directory / f"{kid}.private.pem").exists()
    assert len(store.load().jwks()["keys"]) == 4
    assert sorted(store.load(now=clock.now + WINDOW).published_kids) == sorted(
        states[CURRENT] + states[NEXT])


# -- rotate ----------------------------------------------------------------------------------

def test_rotate_promotes_next_retires_current_and_publishes_a_new_next(store: KeyStore) -> None:
    store.generate()
    before = _states(store)
    store.rotate()
    after = _states(store)
    assert after[CURRENT] == before[NEXT]
    assert after[RETIRED] == before[CURRENT]
    new_next = _only(after[NEXT])
    assert new_next not in before[CURRENT] + before[NEXT]
    old_kid = before[CURRENT][0]
    assert not (store.directory / f"{old_kid}.private.pem").exists()
    assert (store.directory / f"{old_kid}.public.pem").exists()
    ring = store.load()
    assert ring.current_kid == before[NEXT][0]
    assert old_kid in ring.published_kids
    assert len(ring.jwks()["keys"]) == 3
    assert {k.kid: k.state for k in ring.keys} == {
        old_kid: RETIRED, before[NEXT][0]: CURRENT, new_next: NEXT}


def test_retired_key_is_published_until_its_window_ends(store: KeyStore, clock: FakeTime) -> None:
    store.generate()
    old_kid = _only(_states(store)[CURRENT])
    store.rotate()
    retired = next(e for e in store.list() if e["kid"] == old_kid)
    assert retired["publish_until"] == clock.now + WINDOW
    assert old_kid in store.load(now=clock.now + WINDOW - 1).published_kids
    assert old_kid not in store.load(now=clock.now + WINDOW).published_kids
    assert len(store.load(now=clock.now + WINDOW).jwks()["keys"]) == 2


def test_expired_retired_key_is_pruned_with_its_public_file_on_the_next_rotate(
        store: KeyStore, clock: FakeTime) -> None:
    store.generate()
    old_kid = _only(_states(store)[CURRENT])
    store.rotate()
    clock.advance(WINDOW - 1)
    store.rotate()  # still inside the window: kept
    assert old_kid in _states(store)[RETIRED]
    assert (store.directory / f"{old_kid}.public.pem").exists()
    clock.advance(1)
    assert old_kid not in store.load().published_kids  # gone from the JWKS before any rotate
    store.rotate()
    assert old_kid not in [e["kid"] for e in store.list()]
    assert not (store.directory / f"{old_kid}.public.pem").exists()
    assert not (store.directory / f"{old_kid}.private.pem").exists()


def test_rotating_twice_quickly_keeps_both_retired_keys_published(store: KeyStore) -> None:
    store.generate()
    first = _only(_states(store)[CURRENT])
    store.rotate()
    second = _only(_states(store)[CURRENT])
    store.rotate()
    states = _states(store)
    assert sorted(states[RETIRED]) == sorted([first, second])
    assert len(states[CURRENT]) == 1 and len(states[NEXT]) == 1
    ring = store.load()
    assert {first, second} <= set(ring.published_kids)
    assert len(ring.jwks()["keys"]) == 4


def test_rotate_to_eddsa_retires_the_es256_next_key_instead_of_promoting_it(store: KeyStore) -> None:
    store.generate("ES256")
    before = _states(store)
    store.rotate(algorithm="EdDSA")
    after = _states(store)
    assert sorted(after[RETIRED]) == sorted(before[CURRENT] + before[NEXT])
    assert after[CURRENT] != before[NEXT]
    for kid in before[NEXT]:
        assert not (store.directory / f"{kid}.private.pem").exists()
    algs = {e["kid"]: e["alg"] for e in store.list()}
    assert algs[_only(after[CURRENT])] == "EdDSA" and algs[_only(after[NEXT])] == "EdDSA"
    ring = store.load()
    assert ring.current.algorithm == "EdDSA"
    okp = [k for k in ring.jwks()["keys"] if k["kty"] == "OKP"]
    assert len(okp) == 2 and {k["crv"] for k in okp} == {"Ed25519"}
    assert {k["alg"] for k in okp} == {"EdDSA"}
    # later rotations stay on EdDSA without being told again
    store.rotate()
    assert {e["alg"] for e in store.list() if e["state"] != RETIRED} == {"EdDSA"}


def test_rotate_without_a_ring_fails_clearly(store: KeyStore) -> None:
    with pytest.raises(KeyFileError, match="citycode keys generate"):
        store.rotate()


# -- JWKS ------------------------------------------------------------------------------------

@pytest.mark.parametrize("algorithm", ["ES256", "EdDSA"])
def test_jwks_holds_only_public_members_kid_alg_and_use(store: KeyStore, algorithm: str) -> None:
    store.generate(algorithm)
    store.rotate()
    jwks = store.load().jwks()
    assert set(jwks) == {"keys"}
    assert len(jwks["keys"]) == 3
    for key in jwks["keys"]:
        assert "d" not in key
        expected = {"kty", "crv", "x", "kid", "alg", "use"} | ({"y"} if key["kty"] == "EC" else set())
        assert set(key) == expected
        assert key["use"] == "sig" and key["alg"] == algorithm
        assert (key["kty"], key["crv"]) == (("EC", "P-256") if algorithm == "ES256" else ("OKP", "Ed25519"))
        members = {k: v for k, v in key.items() if k not in ("kid", "alg", "use")}
        canonical = json.dumps(members, sort_keys=True, separators=(",", ":")).encode()
        assert keyfiles.b64url(hashlib.sha256(canonical).digest())[:8] == key["kid"]
    for imported in KeySet.import_key_set(jwks).keys:  # RFC 7638 as an outside library computes it
        assert imported.thumbprint()[:8] == imported.kid


def test_code_signed_with_the_current_key_verifies_with_only_the_jwks(store: KeyStore) -> None:
    store.generate("ES256")
    ring = store.load()
    token = _sign(ring, {"sub": "x"})
    assert pyjwt.get_unverified_header(token)["kid"] == ring.current_kid
    assert _verify_with_jwks_only(token, ring.jwks())["sub"] == "x"


def test_code_signed_with_an_eddsa_current_key_verifies_with_only_the_jwks(store: KeyStore) -> None:
    store.generate("EdDSA")
    ring = store.load()
    token = _sign(ring)
    with pytest.warns(SecurityWarning, match="RFC 9864"):  # joserfc prefers the new name "Ed25519"
        assert _verify_with_jwks_only(token, ring.jwks(), "EdDSA")["sub"] == "x"


def test_code_signed_before_a_rotation_still_verifies_against_the_new_jwks(store: KeyStore) -> None:
    store.generate("ES256")
    old = store.load()
    token = _sign(old)
    store.rotate()
    new = store.load()
    assert new.current_kid != old.current_kid
    assert old.current_kid in new.published_kids
    assert _verify_with_jwks_only(token, new.jwks())["sub"] == "x"
    assert _verify_with_jwks_only(_sign(new), new.jwks())["sub"] == "x"


def test_code_signed_with_the_next_key_verifies_as_soon_as_it_is_promoted_by_readers_synced_before(
        store: KeyStore) -> None:
    store.generate()
    synced_before_rotation = store.load().jwks()  # an offline reader's copy
    store.rotate()
    assert _verify_with_jwks_only(_sign(store.load()), synced_before_rotation)["sub"] == "x"


def test_code_of_a_retired_key_no_longer_verifies_once_its_window_ended(
        store: KeyStore, clock: FakeTime) -> None:
    store.generate()
    token = _sign(store.load())
    store.rotate()
    jwks = store.load(now=clock.now + WINDOW).jwks()
    with pytest.raises((JoseError, ValueError)):
        _verify_with_jwks_only(token, jwks)


# -- tampering -------------------------------------------------------------------------------

def test_public_file_replaced_by_another_key_makes_load_fail(store: KeyStore) -> None:
    store.generate()
    next_kid = _only(_states(store)[NEXT])
    path = store.directory / f"{next_kid}.public.pem"
    path.unlink()
    keyfiles.write_public(path, keyfiles.generate("ES256").public_key())
    with pytest.raises(KeyFileError, match=next_kid):
        store.load()


def test_current_private_file_replaced_by_another_key_makes_load_fail(store: KeyStore) -> None:
    store.generate()
    current_kid = _only(_states(store)[CURRENT])
    path = store.directory / f"{current_kid}.private.pem"
    path.unlink()
    keyfiles.write_private(path, keyfiles.generate("ES256"))
    with pytest.raises(KeyFileError, match="does not match"):
        store.load()


def test_missing_public_file_makes_load_fail(store: KeyStore) -> None:
    store.generate()
    (store.directory / f"{_only(_states(store)[NEXT])}.public.pem").unlink()
    with pytest.raises(KeyFileError, match="missing"):
        store.load()


def _rewrite_state(store: KeyStore, entries: list[dict[str, Any]]) -> None:
    store.state_path.write_text(json.dumps({"version": 1, "keys": entries}))


def test_state_naming_two_current_keys_makes_load_fail(store: KeyStore) -> None:
    store.generate()
    _rewrite_state(store, [{**e, "state": CURRENT} for e in store.list()])
    with pytest.raises(KeyFileError, match="exactly one current key, found 2"):
        store.load()


def test_state_naming_no_current_key_makes_load_fail(store: KeyStore) -> None:
    store.generate()
    _rewrite_state(store, [e for e in store.list() if e["state"] != CURRENT])
    with pytest.raises(KeyFileError, match="exactly one current key, found 0"):
        store.load()


def test_state_file_that_is_not_json_makes_load_fail(store: KeyStore) -> None:
    store.generate()
    store.state_path.write_text("{not json")
    with pytest.raises(KeyFileError, match="not valid JSON"):
        store.load()


def test_load_without_any_ring_fails(store: KeyStore) -> None:
    with pytest.raises(KeyFileError):
        store.load()


# -- revoke ---------------------------------------------------------------------------------

def test_revoking_a_retired_key_removes_it_from_the_jwks_at_once(store: KeyStore) -> None:
    store.generate()
    token = _sign(store.load())
    store.rotate()
    retired = _only(_states(store)[RETIRED])
    store.revoke(retired)
    assert retired not in [e["kid"] for e in store.list()]
    assert not (store.directory / f"{retired}.public.pem").exists()
    ring = store.load()  # the same instant: no waiting for the publication window
    assert retired not in ring.published_kids and len(ring.jwks()["keys"]) == 2
    with pytest.raises((JoseError, ValueError)):
        _verify_with_jwks_only(token, ring.jwks())


def test_revoking_the_current_key_is_refused_until_it_is_rotated_out(store: KeyStore) -> None:
    store.generate()
    current = _only(_states(store)[CURRENT])
    before = store.list()
    with pytest.raises(KeyFileError, match="rotate first"):
        store.revoke(current)
    assert store.list() == before
    assert (store.directory / f"{current}.private.pem").exists()
    store.rotate()
    store.revoke(current)
    assert current not in store.load().published_kids


def test_revoking_the_next_key_replaces_it_with_a_fresh_next_key(store: KeyStore) -> None:
    store.generate("EdDSA")
    before = _states(store)
    revoked = _only(before[NEXT])
    store.revoke(revoked)
    after = _states(store)
    assert after[CURRENT] == before[CURRENT] and after[RETIRED] == []
    fresh = _only(after[NEXT])
    assert fresh != revoked
    assert {e["alg"] for e in store.list()} == {"EdDSA"}
    assert not (store.directory / f"{revoked}.private.pem").exists()
    assert not (store.directory / f"{revoked}.public.pem").exists()
    assert sorted(store.load().published_kids) == sorted(before[CURRENT] + [fresh])
    store.rotate()
    assert _states(store)[CURRENT] == [fresh]  # the revoked key can never be promoted


def test_revoking_an_unknown_kid_fails_and_changes_nothing(store: KeyStore) -> None:
    store.generate()
    before = store.list()
    with pytest.raises(KeyFileError, match="no key 'nosuchid'"):
        store.revoke("nosuchid")
    assert store.list() == before


def test_leaked_keys_folder_is_replaced_and_every_old_key_revoked(store: KeyStore) -> None:
    """The README's compromise procedure: generate --force, then revoke each old kid."""
    store.generate()
    leaked = _states(store)
    forged = _sign(store.load())
    store.generate(force=True)
    for kid in leaked[CURRENT] + leaked[NEXT]:
        store.revoke(kid)
    ring = store.load()
    assert set(ring.published_kids).isdisjoint(leaked[CURRENT] + leaked[NEXT])
    assert len(ring.jwks()["keys"]) == 2
    with pytest.raises((JoseError, ValueError)):
        _verify_with_jwks_only(forged, ring.jwks())
    assert _verify_with_jwks_only(_sign(ring), ring.jwks())["sub"] == "x"


def test_cache_drops_a_revoked_key_once_the_interval_passed(store: KeyStore) -> None:
    store.generate()
    store.rotate()
    retired = _only(_states(store)[RETIRED])
    cache = KeyRingCache(store, check_interval=0)
    assert retired in cache.get().published_kids
    store.revoke(retired)
    assert retired not in cache.get().published_kids


# -- cache -----------------------------------------------------------------------------------

def test_cache_returns_the_same_ring_within_the_check_interval(store: KeyStore) -> None:
    store.generate()
    cache = KeyRingCache(store, check_interval=3600)
    ring = cache.get()
    store.rotate()
    assert cache.get() is ring


def test_cache_keeps_the_same_ring_when_nothing_changed(store: KeyStore) -> None:
    store.generate()
    cache = KeyRingCache(store, check_interval=0)
    assert cache.get() is cache.get()


def test_cache_returns_the_new_ring_after_a_rotation_once_the_interval_passed(store: KeyStore) -> None:
    store.generate()
    cache = KeyRingCache(store, check_interval=0)
    first = cache.get()
    store.rotate()
    second = cache.get()
    assert second is not first
    assert second.current_kid == _only(_states(store)[CURRENT]) != first.current_kid


def test_cache_sees_a_rotation_made_by_another_process_after_the_interval(
        store: KeyStore, clock: FakeTime) -> None:
    store.generate()
    cache = KeyRingCache(store, check_interval=1.0)
    first = cache.get()
    KeyStore(store.directory, retire_after_seconds=WINDOW).rotate()  # e.g. the CLI
    assert cache.get() is first
    clock.advance(1.0)
    assert cache.get().current_kid != first.current_kid


def test_cache_reloads_after_invalidate(store: KeyStore) -> None:
    store.generate()
    cache = KeyRingCache(store, check_interval=3600)
    first = cache.get()
    store.rotate()
    cache.invalidate()
    second = cache.get()
    assert second is not first and second.current_kid != first.current_kid


def test_cache_drops_a_retired_key_when_its_window_ends_without_a_rotation(
        store: KeyStore, clock: FakeTime) -> None:
    store.generate()
    store.rotate()
    cache = KeyRingCache(store, check_interval=1.0)
    retired = _only(_states(store)[RETIRED])
    assert retired in cache.get().published_kids
    clock.advance(WINDOW)
    assert retired not in cache.get().published_kids


def test_no_change_can_start_while_a_load_is_reading_the_key_files(
        store: KeyStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """Otherwise a rotation landing mid-load deletes the private key being loaded, or leaves a worker
    holding the old ring stamped with the new state's version (served stale until the next change)."""
    store.generate()
    real_load_public = keyfiles.load_public
    writer_could_lock: list[bool] = []

    def load_public_while_probing_the_writer_lock(path: Path) -> keyfiles.PublicKey:
        with open(store.directory / ".lock", "a+") as probe:
            try:
                fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                writer_could_lock.append(False)
            else:
                fcntl.flock(probe, fcntl.LOCK_UN)
                writer_could_lock.append(True)
        return real_load_public(path)

    monkeypatch.setattr(keyfiles, "load_public", load_public_while_probing_the_writer_lock)
    store.load()
    assert writer_could_lock == [False, False]
    monkeypatch.undo()
    store.rotate()  # and the lock is released afterwards


def test_loads_do_not_block_each_other(store: KeyStore, monkeypatch: pytest.MonkeyPatch) -> None:
    store.generate()
    real_load_private = keyfiles.load_private
    nested: list[str] = []

    def load_private_and_load_again(path: Path) -> keyfiles.PrivateKey:
        if not nested:
            nested.append("")
            nested.append(KeyStore(store.directory).load().current_kid)  # a second reader meanwhile
        return real_load_private(path)

    monkeypatch.setattr(keyfiles, "load_private", load_private_and_load_again)
    assert store.load().current_kid == nested[1]


# -- concurrency -----------------------------------------------------------------------------

def test_concurrent_rotations_leave_one_consistent_ring(store: KeyStore) -> None:
    store.generate()
    errors: list[BaseException] = []
    loaded: list[str] = []
    start = threading.Barrier(8 + 2)
    rotating = threading.Event()
    rotating.set()

    def rotate_three_times() -> None:
        try:
            mine = KeyStore(store.directory, retire_after_seconds=WINDOW)  # one per "worker"
            start.wait()
            for _ in range(3):
                mine.rotate()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    def keep_loading() -> None:
        try:
            reader = KeyStore(store.directory, retire_after_seconds=WINDOW)
            start.wait()
            while rotating.is_set():
                loaded.append(reader.load().current_kid)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    writers = [threading.Thread(target=rotate_three_times) for _ in range(8)]
    readers = [threading.Thread(target=keep_loading) for _ in range(2)]
    for thread in writers + readers:
        thread.start()
    for thread in writers:
        thread.join(timeout=60)
    rotating.clear()
    for thread in readers:
        thread.join(timeout=60)
    assert errors == []
    assert loaded

    states = _states(store)
    assert len(states[CURRENT]) == 1 and len(states[NEXT]) == 1
    assert len(states[RETIRED]) == 8 * 3 + 0  # every former current, none lost, none pruned yet
    kids = [e["kid"] for e in store.list()]
    assert len(kids) == len(set(kids)) == 26
    privates = {p.name.split(".")[0] for p in store.directory.glob("*.private.pem")}
    publics = {p.name.split(".")[0] for p in store.directory.glob("*.public.pem")}
    assert privates == set(states[CURRENT] + states[NEXT])
    assert publics == set(kids)
    assert not list(store.directory.glob("*.tmp"))
    ring = store.load()
    assert len(ring.jwks()["keys"]) == 26
    assert _verify_with_jwks_only(_sign(ring), ring.jwks())["sub"] == "x"

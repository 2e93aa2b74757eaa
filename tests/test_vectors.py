"""The cross-implementation vectors in tests/vectors/ get the same answer everywhere: the core as
an offline reader assembles it, the server's POST /v1/verify, joserfc on the signature-level
cases, and the offline reader of scanners/ (a bus reader without uplink). The device-bound
vectors (tests/vectors/device/: CC2 and sealed CC3) go through the same three readers, each
holding the vectors' reader keys, and a second implementation written from
docs/code-format-v2.md (pycose for the signatures, its own CC3 opening) on their signature-level
cases."""
from __future__ import annotations

import copy
import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import pytest
import redis
from flask.testing import FlaskClient

from app import create_app, db
from app.codes.decision import Decision
from app.codes.device import reader_keys_from
from app.codes.jwks import keys_from_jwks
from app.config import Settings
from app.registry import revocations
from app.registry.pii import PiiVault
from app.runtime import Runtime
from app.scenes.base import ScanContext
from app.signing import keyfiles
from app.signing.keyring import KeyStore
from app.signing.reader_keys import STATE_FILE
from app.store.embedded import EmbeddedRedis
from tests.conftest import ADMIN_TOKEN
from tests.helpers import bearer, terminal
from tests.vectors import device_schema, schema
from tests.vectors.implementations import (Outcome, decide_with_core, decide_with_offline_reader,
                                           joserfc_signature_valid, outcome, used_until)

ROOT = Path(__file__).resolve().parents[1]
FOLDER = ROOT / "tests" / "vectors"
VECTORS = schema.load(FOLDER)
CASE_IDS = [case["id"] for case in VECTORS.cases]
SIGNATURE_LEVEL_IDS = [case["id"] for case in VECTORS.cases if case["signature_level"]]
DEVICE_FOLDER = FOLDER / "device"
DEVICE_VECTORS, DEVICE_SETTINGS = device_schema.load(DEVICE_FOLDER)
DEVICE_IDS = [case["id"] for case in DEVICE_VECTORS.cases]
DEVICE_SIGNATURE_IDS = [case["id"] for case in DEVICE_VECTORS.cases if case["signature_level"]]
SEALED_IDS = [case_id for case_id in DEVICE_IDS if case_id.startswith("sealed-")]
READER_KEYS = DEVICE_SETTINGS["reader_keys"]


# -- (1) the core, as an offline reader assembles it -------------------------------------------
@pytest.mark.parametrize("case_id", CASE_IDS)
def test_core_reader_decides_the_vector_as_expected(case_id: str) -> None:
    case = VECTORS.case(case_id)
    prior, decided = decide_with_core(VECTORS, case)
    assert all(p["decision"] == "accept" for p in prior), prior
    assert decided == case["expected"]


# -- (2) the server: POST /v1/verify at a hall terminal (no scene policy) ----------------------
@dataclass
class Server:
    client: FlaskClient
    token: str
    decided: list[Decision] = field(default_factory=list)

    def scan(self, code: str) -> Outcome:
        """POST /v1/verify; the HTTP body gives decision and reason, the scan observer the
        server's own Decision (the body does not carry ent to a hall terminal)."""
        response = self.client.post("/v1/verify", headers=bearer(self.token), json={"code": code})
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        decision = self.decided[-1]
        assert (decision.decision, decision.reason) == (body["decision"], body["reason"])
        return outcome(decision)


def _seed_trust(rt: Runtime, entries: list[dict[str, Any]]) -> None:
    """The vectors' feed into the server's revocation table (the table the admin and issuer
    APIs write), then the announcement every worker listens for."""
    with rt.db.session() as session:
        for entry in entries:
            revocations.record(session, entry["kind"], entry["id"], entry["at"])
    rt.trust_changed()


def _install_reader_keys(directory: Path, entries: list[dict[str, Any]]) -> None:
    """The vectors' reader keys into the keys folder as the server's ``ReaderKeyRing`` stores its
    own (``reader-keys.json`` and ``reader-<kid>.pem``, docs/code-format-v2.md §6.3): the ring then
    opens CC3 codes with them and serves them at ``GET /v1/terminals/me/reader-keys``. Their
    windows lie around the vectors' clock (2100), so the ring, read on the real clock, neither
    rotates nor drops them."""
    state = []
    for entry in entries:
        (kid, key), = reader_keys_from([entry]).items()
        keyfiles.write_private(directory / f"reader-{kid.hex()}.pem", key)
        state.append({"kid": kid.hex(), "state": entry["state"], "valid_from": entry["valid_from"],
                      "valid_until": entry["valid_until"]})
    (directory / STATE_FILE).write_text(json.dumps({"version": 1, "keys": state}))


def _serve(vectors: schema.VectorSet, redis_server: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory,
           reader_keys: list[dict[str, Any]] | None = None) -> Iterator[Server]:
    """One real app (SQLite file, embedded Redis) configured with the vectors' max_ttl and leeway;
    its verifier is given the vectors' public keys and clock, its feed the vectors' entries, its
    replay store the used pairs, its keys folder the reader keys (device vectors). Cases never
    share a recorded (iss, jti) (the schema checks it), so one server decides them all as fresh
    readers would."""
    folder = tmp_path_factory.mktemp("vectors-server")
    settings = Settings(data_dir=folder / "data", redis_url=redis_server.url, admin_token=ADMIN_TOKEN,
                        code_ttl_seconds=vectors.max_ttl, clock_leeway_seconds=vectors.leeway)
    settings.data_dir.mkdir(parents=True)
    db.migrate(settings.resolved_database_url)
    KeyStore(settings.resolved_keys_dir).generate(settings.key_algorithm)
    PiiVault.create_if_missing(settings.resolved_keys_dir)
    if reader_keys is not None:
        _install_reader_keys(settings.resolved_keys_dir, reader_keys)
    flush = redis.Redis.from_url(redis_server.url)
    flush.flushdb()
    application = create_app(settings)
    application.config["TESTING"] = True
    rt: Runtime = application.extensions["citycode"]
    core = rt.verifier.core
    assert (core.issuer, core.max_ttl, core.leeway, core.max_code_bytes, core.algorithms) == (
        vectors.issuer, vectors.max_ttl, vectors.leeway, vectors.max_code_chars, vectors.algorithms)
    keys = keys_from_jwks(vectors.jwks)
    core.keys = lambda: keys
    core.device.keys = lambda: keys
    core.clock = lambda: vectors.now
    rt.scans.clock = lambda: vectors.now
    _seed_trust(rt, vectors.trust["entries"])
    subs = _pseudonyms_of_codes(core, vectors)
    for pair in vectors.used:  # in the rider shard of the code's pseudonym, as a scan claims it
        assert core.replay.claim(pair["iss"], pair["jti"], used_until(vectors),
                                 subs.get((pair["iss"], pair["jti"]), ""))
    client = application.test_client()
    served = Server(client, terminal(client, "hall"))

    def capture(ctx: ScanContext, decision: Decision) -> None:
        served.decided.append(decision)

    rt.scans.observers.append(capture)
    yield served
    rt.close()
    flush.flushdb()
    flush.close()


def _pseudonyms_of_codes(core: Any, vectors: Any) -> dict[tuple[str, str], str]:
    """``(iss, jti) → sub`` of every case's code that checks out far enough to have claims. The
    vectors name a used code by ``(iss, jti)`` only, as every reader claims it; this server keeps
    the replay record in the Redis slot of the code's pseudonym (``app.store.slots``), so seeding
    one needs that pseudonym too."""
    found: dict[tuple[str, str], str] = {}
    for case in vectors.cases:
        for code in [case["code"], *case.get("prior", [])]:
            claims = core.check(code).claims
            if claims is not None:
                found[(claims.iss, claims.jti)] = claims.sub
    return found


@pytest.fixture(scope="module")
def server(redis_server: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from _serve(VECTORS, redis_server, tmp_path_factory)


def test_server_publishes_the_vectors_trust_feed(server: Server) -> None:
    response = server.client.get("/v1/trust/revocations?since=0", headers=bearer(server.token))
    assert response.status_code == 200
    assert response.get_json() == VECTORS.trust


@pytest.mark.parametrize("case_id", CASE_IDS)
def test_server_verify_endpoint_decides_the_vector_as_expected(server: Server, case_id: str) -> None:
    case = VECTORS.case(case_id)
    prior = [server.scan(code) for code in case.get("prior", [])]
    assert all(p["decision"] == "accept" for p in prior), prior
    assert server.scan(case["code"]) == case["expected"]


# -- (3) a second JOSE library on the signature-level cases -------------------------------------
@pytest.mark.parametrize("case_id", SIGNATURE_LEVEL_IDS)
def test_joserfc_agrees_on_the_signature_of_the_vector(case_id: str) -> None:
    case = VECTORS.case(case_id)
    assert joserfc_signature_valid(VECTORS, case["code"]) is case["signature_valid"]
    assert case["signature_valid"] is (case["expected"]["reason"] not in schema.SIGNATURE_REASONS)


# -- (4) the offline reader of scanners/ --------------------------------------------------------
@pytest.mark.parametrize("case_id", CASE_IDS)
def test_offline_reader_decides_the_vector_as_expected(case_id: str, tmp_path: Path) -> None:
    case = VECTORS.case(case_id)
    prior, decided = decide_with_offline_reader(VECTORS, case, tmp_path)
    assert all(p["decision"] == "accept" for p in prior), prior
    assert decided == case["expected"]


# -- the format and the generator ----------------------------------------------------------------
def test_committed_vectors_follow_the_format() -> None:
    assert schema.problems(schema.read(FOLDER)) == []
    assert {case["expected"]["reason"] for case in VECTORS.cases} == schema.CORE_REASONS


def test_no_private_key_material_is_committed() -> None:
    for path in FOLDER.iterdir():
        if path.is_file():
            assert "PRIVATE KEY" not in path.read_text(encoding="utf-8"), path
    for jwk in VECTORS.jwks["keys"]:
        assert set(jwk) <= {"kty", "crv", "x", "y", "kid", "alg", "use"}


@pytest.mark.parametrize("breakage", ["reason changed", "signature flag flipped", "accept without ent",
                                      "jti shared", "reason missing", "private key"])
def test_format_check_catches_a_broken_folder(breakage: str) -> None:
    docs = copy.deepcopy(schema.read(FOLDER))
    cases = docs["cases.json"]["cases"]
    accepted = next(c for c in cases if c["expected"]["decision"] == "accept")
    if breakage == "reason changed":
        authentic = next(c for c in cases if c["signature_level"] and c["signature_valid"])
        authentic["expected"]["reason"] = "bad_signature"
    elif breakage == "signature flag flipped":
        accepted["signature_valid"] = False
    elif breakage == "accept without ent":
        del accepted["expected"]["ent"]
    elif breakage == "jti shared":
        next(c for c in cases if c is not accepted)["prior"] = [accepted["code"]]
    elif breakage == "reason missing":
        docs["cases.json"]["cases"] = [c for c in cases if c["expected"]["reason"] != "suspended"]
    else:
        docs["jwks.json"]["keys"][0]["d"] = docs["jwks.json"]["keys"][0]["x"]
    assert schema.problems(docs) != []


def test_regenerated_vectors_have_the_committed_cases_and_pass(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "tests.vectors.generate", "--out", str(tmp_path)],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    fresh = schema.load(tmp_path)
    assert {k["kid"] for k in fresh.jwks["keys"]}.isdisjoint(k["kid"] for k in VECTORS.jwks["keys"])
    assert _shape(fresh) == _shape(VECTORS), "the committed vectors are stale: run the generator"
    for case in fresh.cases:
        prior, decided = decide_with_core(fresh, case)
        assert decided == case["expected"], case["id"]
        if case["signature_level"]:
            assert joserfc_signature_valid(fresh, case["code"]) is case["signature_valid"], case["id"]


def _shape(vectors: schema.VectorSet) -> str:
    """Everything but keys, signatures and random jtis: what the generator decides."""
    cases = [{k: v for k, v in case.items() if k not in ("code", "prior")}
             | {"prior": len(case.get("prior", []))} for case in vectors.cases]
    feed = [(e["version"], e["kind"]) for e in vectors.trust["entries"]]
    settings = (vectors.now, vectors.issuer, vectors.max_ttl, vectors.leeway, vectors.max_code_chars,
                vectors.algorithms, len(vectors.used))
    return json.dumps([cases, feed, settings], sort_keys=True)


# -- device-bound codes (CC2:, sealed CC3:): the same readers holding the vectors' reader keys, ----
# -- and a second implementation (pycose, and its own CC3 opening) for the signature layer ------------
@pytest.mark.parametrize("case_id", DEVICE_IDS)
def test_core_reader_decides_the_device_vector_as_expected(case_id: str) -> None:
    case = DEVICE_VECTORS.case(case_id)
    prior, decided = decide_with_core(DEVICE_VECTORS, case, READER_KEYS)
    assert all(p["decision"] == "accept" for p in prior), prior
    assert decided == case["expected"]


@pytest.mark.parametrize("case_id", DEVICE_IDS)
def test_offline_reader_decides_the_device_vector_as_expected(case_id: str, tmp_path: Path) -> None:
    case = DEVICE_VECTORS.case(case_id)
    prior, decided = decide_with_offline_reader(DEVICE_VECTORS, case, tmp_path, READER_KEYS)
    assert all(p["decision"] == "accept" for p in prior), prior
    assert decided == case["expected"]


def test_reader_without_the_reader_keys_opens_no_sealed_vector() -> None:
    for case_id in SEALED_IDS:
        case = DEVICE_VECTORS.case(case_id)
        if case["signature_level"]:  # well-formed up to the signatures: only the reader key is missing
            assert decide_with_core(DEVICE_VECTORS, case)[1]["reason"] == "unknown_key", case_id


@pytest.fixture(scope="module")
def device_server(redis_server: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Created after every JWS server case ran (file order): its flush cannot disturb them."""
    yield from _serve(DEVICE_VECTORS, redis_server, tmp_path_factory, READER_KEYS)


def test_server_holds_and_serves_the_vector_reader_keys(device_server: Server) -> None:
    response = device_server.client.get("/v1/terminals/me/reader-keys", headers=bearer(device_server.token))
    assert response.status_code == 200
    assert response.get_json() == {"keys": READER_KEYS}


@pytest.mark.parametrize("case_id", DEVICE_IDS)
def test_server_verify_endpoint_decides_the_device_vector_as_expected(device_server: Server, case_id: str) -> None:
    case = DEVICE_VECTORS.case(case_id)
    prior = [device_server.scan(code) for code in case.get("prior", [])]
    assert all(p["decision"] == "accept" for p in prior), prior
    assert device_server.scan(case["code"]) == case["expected"]


def _second_implementation(vectors: schema.VectorSet, reader_keys: list[dict[str, Any]],
                           code: str) -> tuple[bool, bool]:
    if code.startswith("CC3:"):
        return device_schema.sealed_signatures(vectors.jwks, reader_keys, code)
    return device_schema.pycose_signatures(vectors.jwks, code)


@pytest.mark.parametrize("case_id", DEVICE_SIGNATURE_IDS)
def test_second_implementation_agrees_on_both_signatures_of_the_device_vector(case_id: str) -> None:
    case = DEVICE_VECTORS.case(case_id)
    assert _second_implementation(DEVICE_VECTORS, READER_KEYS, case["code"]) == (
        case["certificate_signature_valid"], case["device_signature_valid"])


@pytest.mark.parametrize("case_id", [i for i in SEALED_IDS if not DEVICE_VECTORS.case(i)["signature_level"]])
def test_second_implementation_cannot_open_the_sealed_vectors_below_signature_level(case_id: str) -> None:
    """What the second implementation refuses to read (length, shape, reader key not held, bad
    ephemeral key, framing, padding) is exactly what the vectors leave below signature level."""
    with pytest.raises(device_schema.Refused):
        device_schema.sealed_signatures(DEVICE_VECTORS.jwks, READER_KEYS, DEVICE_VECTORS.case(case_id)["code"])


SEALED_CASES = {"valid-student", "tampered-certificate", "tampered-ciphertext-certificate",
                "tampered-device-signature", "expired-certificate", "revoked-certificate", "suspended-citizen",
                "wrong-device-key", "replayed-ephemeral-key", "used-ephemeral-key", "reader-key-retired-in-grace",
                "reader-key-not-held", "malformed-short", "malformed-long", "malformed-epk-not-on-curve",
                "malformed-nonzero-padding", "certificate-not-yet-valid", "code-not-yet-valid"}


def test_device_vectors_cover_the_issue_cases_and_the_reader_settings() -> None:
    every = {"ok", "expired", "not_yet_valid", "bad_signature", "unknown_key", "revoked", "suspended",
             "replayed", "malformed"}
    for prefix in ("device-", "sealed-"):
        assert {c["expected"]["reason"] for c in DEVICE_VECTORS.cases if c["id"].startswith(prefix)} == every
    assert {"sealed-" + name for name in SEALED_CASES} <= set(SEALED_IDS)
    assert DEVICE_VECTORS.case("sealed-valid-student")["expected"]["ent"] == ["stu"]
    assert {len(DEVICE_VECTORS.case(i)["code"]) for i in SEALED_IDS if DEVICE_VECTORS.case(i)["signature_level"]} == {418}
    assert {k: v for k, v in DEVICE_SETTINGS.items() if k != "reader_keys"} == {
        "code_seconds": 30, "max_certificate_seconds": 7 * 86400}
    assert [k["state"] for k in READER_KEYS] == ["retired", "current", "next"]
    assert device_schema.problems(device_schema.read(DEVICE_FOLDER)) == []
    for path in DEVICE_FOLDER.iterdir():
        assert "PRIVATE KEY" not in path.read_text(encoding="utf-8"), path


@pytest.mark.parametrize("breakage", ["kid not the key's", "not labelled test-only", "public half differs",
                                      "cc2 code in a sealed case"])
def test_device_format_check_catches_a_broken_folder(breakage: str) -> None:
    docs = copy.deepcopy(device_schema.read(DEVICE_FOLDER))
    readers = docs["reader_keys.json"]
    if breakage == "kid not the key's":
        readers["keys"][0]["kid"] = readers["keys"][1]["kid"]
    elif breakage == "not labelled test-only":
        del readers["test_only"]
    elif breakage == "public half differs":
        readers["keys"][0]["public_key"] = readers["keys"][1]["public_key"]
    else:
        docs["cases.json"]["cases"][-1]["code"] = docs["cases.json"]["cases"][0]["code"]
    assert device_schema.problems(docs) != []


def test_regenerated_device_vectors_have_the_committed_cases_and_pass(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "tests.vectors.device_generate", "--out", str(tmp_path)],
                            cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    fresh, settings = device_schema.load(tmp_path)
    shape = [{k: v for k, v in c.items() if k not in ("code", "prior")} for c in fresh.cases]
    assert shape == [{k: v for k, v in c.items() if k not in ("code", "prior")} for c in DEVICE_VECTORS.cases]
    assert {k["kid"] for k in settings["reader_keys"]}.isdisjoint(k["kid"] for k in READER_KEYS)
    for case in fresh.cases:
        assert decide_with_core(fresh, case, settings["reader_keys"])[1] == case["expected"], case["id"]
        if case["signature_level"]:
            assert _second_implementation(fresh, settings["reader_keys"], case["code"]) == (
                case["certificate_signature_valid"], case["device_signature_valid"]), case["id"]

"""Readers that decide vectors without a server: the core as an offline reader assembles it, the
offline reader of ``scanners/``, and a second JOSE library (joserfc) for the signature-level
question. The server path needs the Flask app and lives in ``tests/test_vectors.py``.

An outcome is ``{"decision", "reason"}`` plus ``"ent"`` (sorted names) for an accept — the shape
of a case's ``expected``.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from joserfc import jws
from joserfc.errors import JoseError, SecurityWarning
from joserfc.jwk import KeySet

from app.codes.decision import Decision
from app.codes.device import reader_keys_from
from app.codes.jwks import keys_from_jwks
from app.codes.replay import MemoryReplayStore
from app.codes.trust import StaticTrust
from app.codes.verify import Verifier
from tests.vectors.schema import VectorSet

Outcome = dict[str, Any]


def outcome(decision: Decision) -> Outcome:
    """A core ``Decision`` in the shape of ``expected``."""
    result: Outcome = {"decision": decision.decision, "reason": decision.reason}
    if decision.accepted and decision.claims is not None:
        result["ent"] = sorted(decision.claims.ent)
    return result


def used_until(vectors: VectorSet) -> int:
    """How long a reader keeps the vectors' used pairs: past the end of every code in them."""
    return vectors.now + vectors.max_ttl + vectors.leeway


ReaderKeyEntries = Sequence[Mapping[str, Any]]
"""Reader keys as ``GET /v1/terminals/me/reader-keys`` lists them (device vectors: CC3 codes)."""


def core_reader(vectors: VectorSet, reader_keys: ReaderKeyEntries = ()) -> Verifier:
    """A fresh offline reader built the way ``scanners/`` builds one: keys from the published JWKS,
    reader keys (if any), trust from the revocation feed, an in-memory replay store, and the
    vectors' fixed clock."""
    keys, held = keys_from_jwks(vectors.jwks), reader_keys_from(reader_keys)
    clock: Callable[[], float] = lambda: vectors.now  # noqa: E731 - the fixed clock
    trust = StaticTrust()
    trust.apply(vectors.trust["entries"])
    replay = MemoryReplayStore(clock)
    for pair in vectors.used:
        replay.claim(pair["iss"], pair["jti"], used_until(vectors))
    return Verifier(lambda: keys, trust, replay, vectors.issuer, max_ttl=vectors.max_ttl,
                    algorithms=vectors.algorithms, leeway=vectors.leeway, clock=clock,
                    max_code_bytes=vectors.max_code_chars, reader_keys=lambda: held)


def decide_with_core(vectors: VectorSet, case: dict[str, Any],
                     reader_keys: ReaderKeyEntries = ()) -> tuple[list[Outcome], Outcome]:
    """``(outcomes of the prior scans, outcome of the case's code)`` on a fresh core reader."""
    reader = core_reader(vectors, reader_keys)
    prior = [outcome(reader.verify(code)) for code in case.get("prior", [])]
    return prior, outcome(reader.verify(case["code"]))


def joserfc_signature_valid(vectors: VectorSet, code: str) -> bool:
    """Does joserfc, given only the JWKS and the two algorithms, accept the JWS signature?"""
    key_set = KeySet.import_key_set(vectors.jwks)  # type: ignore[arg-type]
    with warnings.catch_warnings():
        # joserfc flags the "EdDSA" name as deprecated by RFC 9864; the JWKS publishes it.
        warnings.simplefilter("ignore", SecurityWarning)
        try:
            jws.deserialize_compact(code, key_set, algorithms=list(vectors.algorithms))
        except (JoseError, ValueError):
            return False
    return True


def decide_with_offline_reader(vectors: VectorSet, case: dict[str, Any], data_dir: Path,
                               reader_keys: ReaderKeyEntries = ()) -> tuple[list[Outcome], Outcome]:
    """``(prior outcomes, outcome)`` from a fresh ``scanners.reader.Reader`` — a bus reader with
    no uplink (hall kiosks never decide offline), provisioned with the vectors' JWKS, full feed and
    settings (``Reader.provision``) as of the vectors' clock; the reader keys go in as a sync
    stores them (``TrustMaterial.replace_reader_keys``), the used pairs into its SQLite replay
    cache."""
    from scanners.reader import Reader

    me = {"terminal_id": "t_vectors", "kind": "bus", "site": {"line": "321", "vehicle": "vectors-bus"},
          "issuer": vectors.issuer, "code_ttl_seconds": vectors.max_ttl,
          "clock_leeway_seconds": vectors.leeway}
    reader = Reader.provision(data_dir, me=me, jwks=vectors.jwks, feed=vectors.trust,
                              base_url="http://127.0.0.1:9", terminal_token="cct_never-used-offline",
                              now=vectors.now, offline=True, clock=lambda: vectors.now)
    try:
        reader.material.replace_reader_keys(list(reader_keys))
        for pair in vectors.used:
            reader.replay.claim(pair["iss"], pair["jti"], used_until(vectors))

        def scan(code: str) -> Outcome:
            decided = reader.scan(code, offline=True)
            result: Outcome = {"decision": decided.decision, "reason": decided.reason}
            if decided.decision == "accept" and decided.claims is not None:
                result["ent"] = sorted(decided.claims["ent"])
            return result

        prior = [scan(code) for code in case.get("prior", [])]
        return prior, scan(case["code"])
    finally:
        reader.close()

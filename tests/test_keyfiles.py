"""Key files on disk: 0600 private files, permission refusal, JWK members and RFC 7638 ``kid``."""
from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from joserfc.jwk import ECKey, OKPKey

from app.signing import keyfiles
from app.signing.keyfiles import KeyFileError


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _public_pem(key: keyfiles.PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


@pytest.mark.parametrize("algorithm", ["ES256", "EdDSA"])
def test_private_key_file_is_created_mode_0600_even_with_a_permissive_umask(
        tmp_path: Path, algorithm: str) -> None:
    path = tmp_path / "k.private.pem"
    old_umask = os.umask(0)
    try:
        keyfiles.write_private(path, keyfiles.generate(algorithm))
    finally:
        os.umask(old_umask)
    assert _mode(path) == 0o600


def test_private_key_file_is_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "k.private.pem"
    keyfiles.write_private(path, keyfiles.generate("ES256"))
    before = path.read_bytes()
    with pytest.raises(FileExistsError):
        keyfiles.write_private(path, keyfiles.generate("ES256"))
    assert path.read_bytes() == before


@pytest.mark.parametrize("algorithm", ["ES256", "EdDSA"])
def test_private_key_round_trips_through_its_file(tmp_path: Path, algorithm: str) -> None:
    key = keyfiles.generate(algorithm)
    path = tmp_path / "k.private.pem"
    keyfiles.write_private(path, key)
    loaded = keyfiles.load_private(path)
    assert keyfiles.thumbprint_kid(loaded.public_key()) == keyfiles.thumbprint_kid(key.public_key())
    assert keyfiles.algorithm_of(loaded.public_key()) == algorithm


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o644, 0o620, 0o602, 0o610, 0o601],
                         ids=oct)
def test_private_key_accessible_by_group_or_others_is_refused_with_a_chmod_hint(
        tmp_path: Path, mode: int) -> None:
    path = tmp_path / "k.private.pem"
    keyfiles.write_private(path, keyfiles.generate("ES256"))
    os.chmod(path, mode)
    with pytest.raises(KeyFileError) as excinfo:
        keyfiles.load_private(path)
    message = str(excinfo.value)
    assert f"chmod 600 {path}" in message
    assert f"{mode:04o}" in message


@pytest.mark.parametrize("mode", [0o600, 0o400], ids=oct)
def test_private_key_readable_by_owner_only_loads(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "k.private.pem"
    keyfiles.write_private(path, keyfiles.generate("EdDSA"))
    os.chmod(path, mode)
    keyfiles.load_private(path)


def test_missing_private_key_file_is_a_key_file_error(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="missing"):
        keyfiles.load_private(tmp_path / "absent.private.pem")


def test_missing_public_key_file_is_a_key_file_error(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="missing"):
        keyfiles.load_public(tmp_path / "absent.public.pem")


def test_private_key_on_an_unsupported_curve_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "p384.private.pem"
    pem = ec.generate_private_key(ec.SECP384R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    path.write_bytes(pem)
    os.chmod(path, 0o600)
    key = keyfiles.load_private(path)  # loads, but cannot be turned into a JWK / kid
    with pytest.raises(KeyFileError, match="P-256"):
        keyfiles.thumbprint_kid(key.public_key())  # type: ignore[arg-type]


def test_unsupported_algorithm_is_rejected() -> None:
    with pytest.raises(ValueError, match="unsupported algorithm"):
        keyfiles.generate("RS256")


def test_public_key_file_round_trips_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    key = keyfiles.generate("ES256")
    path = tmp_path / "k.public.pem"
    keyfiles.write_public(path, key.public_key())
    assert keyfiles.thumbprint_kid(keyfiles.load_public(path)) == keyfiles.thumbprint_kid(key.public_key())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.public.pem"]


def test_es256_kid_is_the_rfc7638_thumbprint_computed_by_joserfc() -> None:
    for _ in range(5):
        key = keyfiles.generate("ES256")
        expected = ECKey.import_key(_public_pem(key)).thumbprint()
        assert keyfiles.thumbprint_kid(key.public_key()) == expected[:8]
        assert len(keyfiles.thumbprint_kid(key.public_key())) == keyfiles.KID_LENGTH == 8


def test_eddsa_kid_is_the_rfc7638_thumbprint_computed_by_joserfc() -> None:
    for _ in range(5):
        key = keyfiles.generate("EdDSA")
        expected = OKPKey.import_key(_public_pem(key)).thumbprint()
        assert keyfiles.thumbprint_kid(key.public_key()) == expected[:8]


def test_es256_public_jwk_has_exactly_the_required_public_members() -> None:
    key = keyfiles.generate("ES256")
    jwk = keyfiles.public_jwk(key.public_key())
    assert set(jwk) == {"kty", "crv", "x", "y"}
    assert (jwk["kty"], jwk["crv"]) == ("EC", "P-256")
    # 32-byte coordinates, unpadded base64url: 43 characters even when a leading byte is zero
    assert len(jwk["x"]) == len(jwk["y"]) == 43
    assert ECKey.import_key(jwk).as_dict(private=False)["x"] == jwk["x"]


def test_eddsa_public_jwk_has_exactly_the_required_public_members() -> None:
    key = keyfiles.generate("EdDSA")
    jwk = keyfiles.public_jwk(key.public_key())
    assert set(jwk) == {"kty", "crv", "x"}
    assert (jwk["kty"], jwk["crv"]) == ("OKP", "Ed25519")
    assert len(jwk["x"]) == 43

from __future__ import annotations

import os
from pathlib import Path

import pytest

from app.registry.pii import SECRET_FILE, PiiVault, VaultError


def test_secret_file_is_created_once_with_mode_0600(tmp_path: Path) -> None:
    assert PiiVault.create_if_missing(tmp_path) is True
    first = (tmp_path / SECRET_FILE).read_bytes()
    assert PiiVault.create_if_missing(tmp_path) is False
    assert (tmp_path / SECRET_FILE).read_bytes() == first
    assert (tmp_path / SECRET_FILE).stat().st_mode & 0o777 == 0o600


def test_group_readable_secret_is_refused(tmp_path: Path) -> None:
    PiiVault.create_if_missing(tmp_path)
    os.chmod(tmp_path / SECRET_FILE, 0o640)
    with pytest.raises(VaultError, match="chmod 600"):
        PiiVault.load(tmp_path)


def test_ciphertext_round_trips_and_hides_the_value(tmp_path: Path) -> None:
    PiiVault.create_if_missing(tmp_path)
    vault = PiiVault.load(tmp_path)
    blob = vault.encrypt("张三", "citizens/c1/name")
    assert "张三".encode() not in blob
    assert vault.decrypt(blob, "citizens/c1/name") == "张三"
    assert vault.encrypt("张三", "citizens/c1/name") != blob  # fresh nonce each time


def test_ciphertext_moved_to_another_row_or_column_does_not_decrypt(tmp_path: Path) -> None:
    PiiVault.create_if_missing(tmp_path)
    vault = PiiVault.load(tmp_path)
    blob = vault.encrypt("张三", "citizens/c1/name")
    for context in ("citizens/c2/name", "citizens/c1/phone"):
        with pytest.raises(VaultError):
            vault.decrypt(blob, context)
    with pytest.raises(VaultError):
        vault.decrypt(blob[:-1] + bytes([blob[-1] ^ 1]), "citizens/c1/name")


def test_lookup_hash_is_keyed_and_deterministic(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    PiiVault.create_if_missing(tmp_path / "a")
    PiiVault.create_if_missing(tmp_path / "b")
    a, b = PiiVault.load(tmp_path / "a"), PiiVault.load(tmp_path / "b")
    assert a.lookup_hash("11010519491231002X", "id_number") == a.lookup_hash("11010519491231002X", "id_number")
    assert a.lookup_hash("11010519491231002X", "id_number") != b.lookup_hash("11010519491231002X", "id_number")

"""``citycode keys generate|rotate|list|revoke`` driven through click's test runner."""
from __future__ import annotations

import json
import re
import stat
from pathlib import Path
from typing import Any, Callable

import pytest
from click.testing import CliRunner, Result

from app.cli import main

LINE = re.compile(r"^(?P<kid>[A-Za-z0-9_-]{8})  (?P<alg>ES256|EdDSA)\s+(?P<state>current|next|retired)\b")


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def run(data_dir: Path) -> Callable[..., Result]:
    runner = CliRunner()
    env = {"CITYCODE_DATA_DIR": str(data_dir), "CITYCODE_KEYS_DIR": None,
           "CITYCODE_KEY_ALGORITHM": None, "CITYCODE_CODE_TTL_SECONDS": None,
           "CITYCODE_CLOCK_LEEWAY_SECONDS": None}

    def invoke(*args: str, **extra_env: str) -> Result:
        return runner.invoke(main, ["keys", *args], env={**env, **extra_env}, catch_exceptions=False)

    return invoke


def _rows(output: str) -> list[dict[str, str]]:
    return [m.groupdict() for line in output.splitlines() if (m := LINE.match(line))]


def _listed(run: Any) -> list[dict[str, Any]]:
    result = run("list", "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_generate_creates_a_ring_in_the_data_dir_and_lists_its_kids_and_states(run: Any, data_dir: Path) -> None:
    result = run("generate")
    assert result.exit_code == 0, result.output
    rows = _rows(result.stdout)
    assert sorted(r["state"] for r in rows) == ["current", "next"]
    assert {r["alg"] for r in rows} == {"ES256"}
    keys_dir = data_dir / "keys"
    assert stat.S_IMODE(keys_dir.stat().st_mode) == 0o700
    for row in rows:
        private = keys_dir / f"{row['kid']}.private.pem"
        assert stat.S_IMODE(private.stat().st_mode) == 0o600
        assert (keys_dir / f"{row['kid']}.public.pem").exists()


def test_generate_honours_the_algorithm_option(run: Any) -> None:
    assert run("generate", "--algorithm", "EdDSA").exit_code == 0
    assert {e["alg"] for e in _listed(run)} == {"EdDSA"}


def test_generate_uses_the_configured_algorithm_by_default(run: Any) -> None:
    result = run("generate", CITYCODE_KEY_ALGORITHM="EdDSA")
    assert result.exit_code == 0, result.output
    assert {r["alg"] for r in _rows(result.stdout)} == {"EdDSA"}


def test_generate_twice_without_force_fails_clearly_and_keeps_the_ring(run: Any) -> None:
    assert run("generate").exit_code == 0
    before = _listed(run)
    result = run("generate")
    assert result.exit_code == 1
    assert "a key ring already exists" in result.stderr
    assert "--force" in result.stderr and "citycode keys rotate" in result.stderr
    assert _listed(run) == before


def test_generate_with_force_retires_the_old_ring(run: Any) -> None:
    run("generate")
    old = {e["kid"] for e in _listed(run)}
    result = run("generate", "--force")
    assert result.exit_code == 0, result.output
    rows = _rows(result.stdout)
    assert {r["kid"] for r in rows if r["state"] == "retired"} == old
    assert sorted(r["state"] for r in rows if r["kid"] not in old) == ["current", "next"]
    for line in result.stdout.splitlines():
        if " retired" in line:
            assert re.search(r"published for \d+ s more", line)


def test_rotate_promotes_next_and_lists_the_retired_key(run: Any) -> None:
    run("generate")
    before = {e["state"]: e["kid"] for e in _listed(run)}
    result = run("rotate")
    assert result.exit_code == 0, result.output
    rows = {r["kid"]: r["state"] for r in _rows(result.stdout)}
    assert rows[before["current"]] == "retired"
    assert rows[before["next"]] == "current"
    assert sorted(rows.values()) == ["current", "next", "retired"]
    retired_line = next(line for line in result.stdout.splitlines() if line.startswith(before["current"]))
    # default window: past every device certificate it signed (24 h) + clock leeway 5 s
    assert re.search(r"published for (8640[0-5]) s more", retired_line)


def test_rotate_window_follows_the_code_ttl_setting(run: Any) -> None:
    run("generate")
    run("rotate", CITYCODE_CODE_TTL_SECONDS="300", CITYCODE_CLOCK_LEEWAY_SECONDS="10")
    retired = next(e for e in _listed(run) if e["state"] == "retired")
    assert retired["publish_until"] - retired["retired_at"] == 24 * 3600 + 10  # device certificates outlive codes


def test_rotate_window_follows_the_device_certificate_setting(run: Any) -> None:
    run("generate")
    run("rotate", CITYCODE_DEVICE_CERT_HOURS="2", CITYCODE_CLOCK_LEEWAY_SECONDS="10")
    retired = next(e for e in _listed(run) if e["state"] == "retired")
    assert retired["publish_until"] - retired["retired_at"] == 2 * 3600 + 10


def test_rotate_to_eddsa_switches_the_ring(run: Any) -> None:
    run("generate")
    result = run("rotate", "--algorithm", "EdDSA")
    assert result.exit_code == 0, result.output
    live = {e["alg"] for e in _listed(run) if e["state"] != "retired"}
    assert live == {"EdDSA"}


def test_rotate_without_a_ring_fails_clearly(run: Any) -> None:
    result = run("rotate")
    assert result.exit_code == 1
    assert "no key ring" in result.stderr and "citycode keys generate" in result.stderr


def test_rotate_rejects_an_unknown_algorithm(run: Any) -> None:
    run("generate")
    result = run("rotate", "--algorithm", "RS256")
    assert result.exit_code == 2
    assert "RS256" in result.stderr


def test_list_json_parses_and_matches_the_text_listing(run: Any) -> None:
    run("generate")
    run("rotate")
    entries = _listed(run)
    assert sorted(e["state"] for e in entries) == ["current", "next", "retired"]
    for entry in entries:
        assert {"kid", "alg", "state", "created_at"} <= set(entry)
    text = run("list")
    assert text.exit_code == 0
    assert {(r["kid"], r["state"]) for r in _rows(text.stdout)} == {(e["kid"], e["state"]) for e in entries}


def test_list_json_without_a_ring_is_an_empty_list(run: Any) -> None:
    result = run("list", "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == []


def test_keys_dir_setting_overrides_the_data_dir(run: Any, tmp_path: Path, data_dir: Path) -> None:
    keys_dir = tmp_path / "elsewhere"
    assert run("generate", CITYCODE_KEYS_DIR=str(keys_dir)).exit_code == 0
    assert (keys_dir / "keyring.json").exists()
    assert not (data_dir / "keys").exists()


def test_revoke_removes_a_retired_key_at_once(run: Any) -> None:
    run("generate")
    run("rotate")
    retired = next(e["kid"] for e in _listed(run) if e["state"] == "retired")
    result = run("revoke", "--", retired)  # "--": a kid may start with "-"
    assert result.exit_code == 0, result.output
    assert f"revoked {retired}" in result.stdout
    assert retired not in {r["kid"] for r in _rows(result.stdout)}
    assert retired not in {e["kid"] for e in _listed(run)}


def test_revoke_of_the_current_key_fails_clearly(run: Any) -> None:
    run("generate")
    current = next(e["kid"] for e in _listed(run) if e["state"] == "current")
    result = run("revoke", "--", current)
    assert result.exit_code == 1
    assert "rotate first" in result.stderr
    assert current in {e["kid"] for e in _listed(run)}


def test_revoke_of_an_unknown_kid_fails_clearly(run: Any) -> None:
    run("generate")
    result = run("revoke", "nosuchid")
    assert result.exit_code == 1
    assert "no key 'nosuchid'" in result.stderr

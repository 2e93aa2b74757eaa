"""Fleet mode against a served app: readers in threads decide real QR images, one reader loses its
uplink for a stretch of scans and another restarts mid-run; at the end every journal is uploaded,
nothing is pending and the service stored exactly one record per decision."""
from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from scanners.cli import main
from scanners.fleet import FleetConfig, run_fleet
from scanners.fleet_plan import build
from scanners.provision import CityApi, Citizen, Terminal
from tests.conftest import ADMIN_TOKEN

SCANS = 8


def fleet_of(city) -> tuple[list[Terminal], list[Citizen]]:
    sites = [("bus", {"line": "321", "vehicle": "鲁B-10001"}), ("metro", {"station": "五四广场"}),
             ("metro", {"station": "浮山所"})]
    terminals = [Terminal(f"t{n}", city.terminal(kind, **site), kind, site) for n, (kind, site) in enumerate(sites)]
    riders = []
    for n in range(6):
        citizen_id, app_token = city.citizen()
        riders.append(Citizen(citizen_id, app_token, f"rider-{n}"))
    return terminals, riders


def test_fleet_with_an_outage_and_a_restart_uploads_everything_once(city, tmp_path: Path) -> None:
    terminals, riders = fleet_of(city)
    plan = build(outages=("reader:1 at 2 for 4",), restarts=("reader:2 at 4",))
    config = FleetConfig(city.base_url, terminals, riders, tmp_path, scans_per_reader=SCANS, plan=plan,
                         upload_every=3)
    summary = run_fleet(config, CityApi(city.base_url, ADMIN_TOKEN))
    body = summary.to_dict()
    assert body["errors"] == []
    assert body["scans"] == body["decisions"] == len(terminals) * SCANS
    assert sum(body["by_reason"].values()) == sum(body["by_mode"].values()) == body["decisions"]
    assert body["by_mode"].get("offline", 0) >= 4  # reader 1's scans 2..5 were decided offline
    assert body["restarts"] == 1
    assert body["pending"] == 0
    assert body["uploaded"]["stored"] == body["decisions"]
    assert isinstance(body["anomalies"], list)


def test_fleet_command_with_code_strings_prints_a_json_summary(city, tmp_path: Path) -> None:
    terminals, riders = fleet_of(city)
    setup = tmp_path / "setup.json"
    setup.write_text(json.dumps({"terminals": [{"token": t.token} for t in terminals],
                                 "app_tokens": [r.app_token for r in riders]}))
    result = CliRunner().invoke(main, [
        "fleet", "--url", city.base_url, "--setup", str(setup), "--scans", "4", "--codes",
        "--outage", "reader:3 at 0 for 2", "--restart", "reader:1 at 2", "--upload-every", "0",
        "--data-dir", str(tmp_path / "readers"), "--json"], catch_exceptions=False)
    body = json.loads(result.output)
    assert result.exit_code == 0, result.output
    assert body["decisions"] == 12 and body["restarts"] == 1 and body["pending"] == 0
    assert body["uploaded"]["stored"] == 12
    assert body["by_kind"] == {"bus": 4, "metro": 8}


def test_plan_naming_a_reader_the_fleet_does_not_have_is_refused(city, tmp_path: Path) -> None:
    terminals, riders = fleet_of(city)
    setup = tmp_path / "setup.json"
    setup.write_text(json.dumps({"terminals": [{"token": t.token} for t in terminals],
                                 "app_tokens": [r.app_token for r in riders]}))
    result = CliRunner().invoke(main, ["fleet", "--url", city.base_url, "--setup", str(setup),
                                       "--outage", "reader:9 at 0 for 1"])
    assert result.exit_code == 2 and "reader(s) [9]" in result.output

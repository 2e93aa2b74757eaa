"""``citycode-scanner scan``: real QR images rendered by the service, decoded with zxing-cpp, decided
by a reader enrolled with a terminal token; one line of text or JSON per image with timings."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from scanners.cli import main
from scanners.console import describe_result
from tests.helpers import bearer


def png_of(city, app_token: str, path: Path) -> Path:
    """The citizen's current code as the app shows it (GET /v1/me/code.png), saved to ``path``."""
    response = city.client.get("/v1/me/code.png", headers=bearer(app_token))
    assert response.status_code == 200 and response.mimetype == "image/png"
    path.write_bytes(response.get_data())
    return path


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.output


@pytest.fixture
def bus(city, tmp_path: Path) -> list[str]:
    """Options of a bus reader on line 321, enrolled on first use in tmp_path/reader."""
    return ["--url", city.base_url, "--token", city.terminal("bus"), "--data-dir", str(tmp_path / "reader")]


def test_scan_of_a_png_rendered_by_the_service_prints_an_accept_with_timings(city, bus, tmp_path: Path) -> None:
    _, app_token = city.citizen()
    image = png_of(city, app_token, tmp_path / "code.png")
    code, out = run("scan", str(image), *bus, "--kind", "bus")
    assert code == 0, out
    assert re.match(r"ACCEPT\s+ok\s+fare 2\.00 full\s+decode [\d.]+ ms\s+verify [\d.]+ ms\s+total [\d.]+ ms\s+"
                    r"online\s+#1\s+\S+code\.png$", out.strip()), out


def test_json_line_has_decision_reason_result_and_timings(city, bus, tmp_path: Path) -> None:
    _, app_token = city.citizen()
    image = png_of(city, app_token, tmp_path / "code.png")
    code, out = run(str(image), *bus, "--json")  # scan is the default command
    assert code == 0, out
    line = json.loads(out)
    assert (line["decision"], line["reason"], line["mode"], line["seq"]) == ("accept", "ok", "online", 1)
    assert line["message"]["zh"] and line["message"]["en"]
    assert line["result"] == {"fare": {"amount_cents": 200, "category": "full", "display": "full"}}
    timings = line["timings"]
    assert set(timings) == {"decode_ms", "verify_ms", "total_ms"}
    assert 0 < timings["decode_ms"] <= timings["total_ms"]
    assert timings["total_ms"] == pytest.approx(timings["decode_ms"] + timings["verify_ms"], abs=0.02)


def test_folder_is_scanned_in_name_order_one_line_per_image(city, bus, tmp_path: Path) -> None:
    folder = tmp_path / "images"
    folder.mkdir()
    _, rider = city.citizen()
    _, other = city.citizen()
    png_of(city, rider, folder / "1-rider.png")
    png_of(city, rider, folder / "2-rider-again.png")
    shutil.copy(folder / "1-rider.png", folder / "3-screenshot.png")
    png_of(city, other, folder / "4-other.png")
    (folder / "notes.txt").write_text("not an image")
    code, out = run(str(folder), *bus, "--json")
    assert code == 0, out
    lines = [json.loads(text) for text in out.splitlines()]
    assert [(Path(l["source"]).name, l["reason"]) for l in lines] == [
        ("1-rider.png", "ok"), ("2-rider-again.png", "duplicate_tap"),
        ("3-screenshot.png", "replayed"), ("4-other.png", "ok")]
    assert [l["seq"] for l in lines] == [1, 2, 3, 4]


def test_offline_scan_is_decided_locally_and_waits_for_upload(city, bus, tmp_path: Path) -> None:
    _, app_token = city.citizen()
    image = png_of(city, app_token, tmp_path / "code.png")
    code, out = run(str(image), *bus, "--offline", "--json")
    assert code == 0, out
    line = json.loads(out)
    assert (line["decision"], line["mode"]) == ("accept", "offline")
    assert line["result"]["fare"] == {"amount_cents": 200, "category": "full", "display": "full"}
    data_dir = bus[bus.index("--data-dir") + 1]
    code, out = run("status", "--data-dir", data_dir, "--json")
    assert code == 0 and json.loads(out)["pending"] == 1


def test_an_image_without_a_qr_code_is_an_error_line_and_exit_1(city, bus, tmp_path: Path) -> None:
    from PIL import Image

    blank = tmp_path / "blank.png"
    Image.new("L", (200, 200), 255).save(blank)
    code, out = run(str(blank), *bus)
    assert code == 1
    assert out.startswith("ERROR") and "0 QR codes found" in out


def test_kind_that_is_not_the_terminals_registration_is_refused(city, bus, tmp_path: Path) -> None:
    _, app_token = city.citizen()
    image = png_of(city, app_token, tmp_path / "code.png")
    result = CliRunner().invoke(main, [str(image), *bus, "--kind", "metro"])
    assert result.exit_code == 2
    assert "registered as bus" in result.output


def test_metro_gate_needs_a_direction(city, tmp_path: Path) -> None:
    _, app_token = city.citizen()
    image = png_of(city, app_token, tmp_path / "code.png")
    gate = ["--url", city.base_url, "--token", city.terminal("metro", station="五四广场"),
            "--data-dir", str(tmp_path / "gate")]
    assert CliRunner().invoke(main, [str(image), *gate]).exit_code == 2
    code, out = run(str(image), *gate, "--direction", "entry", "--json")
    assert code == 0 and json.loads(out)["result"]["trip"]["station"] == "五四广场"


def test_live_code_is_fetched_with_the_app_token_and_decoded(city, bus) -> None:
    _, app_token = city.citizen()
    code, out = run("scan", "--live", city.base_url, "--app-token", app_token, "--count", "2", *bus, "--json")
    assert code == 0, out
    first, second = (json.loads(text) for text in out.splitlines())
    assert first["reason"] == "ok" and second["reason"] == "duplicate_tap"
    assert first["timings"]["fetch_ms"] > 0


def test_upload_sends_the_journal_and_nothing_is_left_pending(city, bus, tmp_path: Path) -> None:
    _, app_token = city.citizen()
    image = png_of(city, app_token, tmp_path / "code.png")
    assert run(str(image), *bus, "--offline")[0] == 0
    data_dir = bus[bus.index("--data-dir") + 1]
    code, out = run("upload", "--data-dir", data_dir, "--json")
    body = json.loads(out)
    assert code == 0, out
    assert (body["stored"], body["pending"], body["ok"]) == (1, 0, True)
    code, out = run("upload", "--data-dir", data_dir, "--json")
    assert code == 0 and json.loads(out)["stored"] == 0


def test_sync_reports_the_feed_and_keys(city, bus, tmp_path: Path) -> None:
    _, app_token = city.citizen()
    image = png_of(city, app_token, tmp_path / "code.png")
    assert run(str(image), *bus)[0] == 0
    code, out = run("sync", "--data-dir", bus[bus.index("--data-dir") + 1], "--json")
    assert code == 0, out
    body = json.loads(out)
    assert body["ok"] is True and body["keys"] >= 1


def test_console_line_shows_a_concession_not_its_reason() -> None:
    line = describe_result({"fare": {"amount_cents": 0, "category": "disabled", "display": "concession"}})
    assert "concession" in line and "disabled" not in line

"""The fleet's outage and restart script: option spellings, the JSON script, and bad input."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from scanners.fleet_plan import PlanError, build, parse_outage, parse_readers, parse_restart


def test_reader_ranges_and_lists_expand_to_reader_numbers() -> None:
    assert parse_readers("reader:3-5,7") == {3, 4, 5, 7}
    assert parse_readers("2") == {2}


@pytest.mark.parametrize("text", ["reader:0", "reader:5-3", "reader:x", "reader:"])
def test_readers_are_numbered_from_one_and_ranges_go_up(text: str) -> None:
    with pytest.raises(PlanError):
        parse_readers(text)


def test_outage_in_seconds_covers_its_window_only_for_its_readers() -> None:
    outage = parse_outage("reader:3-5 at 10s for 20s")
    assert not outage.covers(4, 9.9, 0)
    assert outage.covers(4, 10.0, 0) and outage.covers(5, 29.9, 99)
    assert not outage.covers(4, 30.0, 0)
    assert not outage.covers(2, 15.0, 0)


def test_outage_in_scans_counts_the_readers_own_scans_whatever_the_time() -> None:
    outage = parse_outage("reader:1 at 5 for 10")
    assert [n for n in range(20) if outage.covers(1, 1e6, n)] == list(range(5, 15))


def test_outage_mixing_seconds_and_scans_is_refused() -> None:
    with pytest.raises(PlanError):
        parse_outage("reader:1 at 5s for 10")


def test_restart_is_due_once_its_moment_is_reached_and_not_again_once_done() -> None:
    plan = build(restarts=("reader:2 at 4",))
    done: set[int] = set()
    assert plan.restarts_due(2, 0.0, 3, done) == []
    assert plan.restarts_due(2, 0.0, 4, done) == [0]
    done.add(0)
    assert plan.restarts_due(2, 0.0, 5, done) == []
    assert plan.restarts_due(1, 0.0, 5, set()) == []


def test_json_script_and_options_make_one_plan(tmp_path: Path) -> None:
    script = tmp_path / "plan.json"
    script.write_text(json.dumps({"events": [
        {"action": "outage", "readers": [1, 2], "at": "2s", "for": "3s"},
        {"action": "restart", "readers": [3], "at": 10}]}))
    plan = build(outages=("reader:4 at 0 for 5",), restarts=("reader:1 at 1s",), script=script)
    assert plan.offline(2, 4.0, 0) and not plan.offline(2, 5.0, 0)
    assert plan.offline(4, 0.0, 4) and not plan.offline(4, 0.0, 5)
    assert plan.readers() == {1, 2, 3, 4}
    assert plan.restarts_due(3, 0.0, 10, set()) == [0]


@pytest.mark.parametrize("spec", ["reader:1 for 10s", "reader:1 at soon for 10s", "at 1s for 2s"])
def test_unreadable_outage_is_a_plan_error(spec: str) -> None:
    with pytest.raises(PlanError):
        parse_outage(spec)


def test_unknown_action_in_a_script_is_a_plan_error(tmp_path: Path) -> None:
    script = tmp_path / "plan.json"
    script.write_text(json.dumps({"events": [{"action": "explode", "readers": [1], "at": 1}]}))
    with pytest.raises(PlanError, match="unknown action"):
        build(script=script)
    with pytest.raises(PlanError):
        parse_restart("reader:1")

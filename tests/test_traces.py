"""The morning-rush trace generator: deterministic, sized as loadtest/traces/README.md says, well
formed, and every expected outcome what the scene rules give."""
from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path

import pytest

from app.scenes.sites import site_problems
from loadtest.traces.format import TraceError, check, read, write
from loadtest.traces.figures import Plan
from loadtest.traces.generate import Generator, generate, main

# The README's table, scale 0.01.
DOCUMENTED_AT_0_01 = {
    "terminals": {"bus": 100, "metro": 150, "scenic": 3, "hall": 209},
    "bus_taps": 4400, "duplicate_taps": 22, "metro_entries": 3120, "metro_exits": 3120,
    "passbacks": 6, "no_entry": 3, "scenic_admissions": 17, "no_reservation": 1,
    "already_admitted": 1, "hall_tickets": 76, "events": 10766, "riders": 6650,
}


@pytest.fixture(scope="module")
def small():  # type: ignore[no-untyped-def]
    return generate(0.01, seed=1)


def _recount(trace) -> dict:  # type: ignore[no-untyped-def]
    events = trace.events
    by = Counter((e.scene, e.direction, e.expect) for e in events)
    return {
        "terminals": dict(Counter(t["kind"] for t in trace.header["terminals"])),
        "bus_taps": by["bus", None, "accept"], "duplicate_taps": by["bus", None, "duplicate_tap"],
        "metro_entries": by["metro", "entry", "accept"], "metro_exits": by["metro", "exit", "accept"],
        "passbacks": by["metro", "entry", "passback"], "no_entry": by["metro", "exit", "no_entry"],
        "scenic_admissions": by["scenic", None, "accept"],
        "no_reservation": by["scenic", None, "no_reservation"],
        "already_admitted": by["scenic", None, "already_admitted"],
        "hall_tickets": by["hall", None, "accept"], "events": len(events),
        "riders": len({e.rider for e in events}),
    }


def test_same_scale_and_seed_write_the_same_file_and_another_seed_does_not(tmp_path: Path) -> None:
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        main(["--out", str(tmp_path / f"{name}.jsonl"), "--scale", "0.002", "--seed", str(seed)])
    first = (tmp_path / "a.jsonl").read_bytes()
    assert first == (tmp_path / "b.jsonl").read_bytes()
    assert first != (tmp_path / "c.jsonl").read_bytes()


def test_small_trace_has_the_documented_sizes_in_its_header_and_in_its_events(small) -> None:  # type: ignore[no-untyped-def]
    counted = _recount(small)
    assert counted == DOCUMENTED_AT_0_01
    header = small.header["counts"]
    assert {k: header[k] for k in DOCUMENTED_AT_0_01} == DOCUMENTED_AT_0_01
    assert small.riders == counted["riders"]
    assert header["offline_bus_taps"] == sum(1 for e in small.events if e.mode == "offline") > 0


def test_smallest_trace_still_has_every_scene_and_every_deny_it_means_to_cause() -> None:
    trace = generate(0.0002, seed=2)
    outcomes = {(e.scene, e.expect) for e in trace.events}
    assert outcomes == {("bus", "accept"), ("bus", "duplicate_tap"), ("metro", "accept"),
                        ("metro", "passback"), ("metro", "no_entry"), ("scenic", "accept"),
                        ("scenic", "no_reservation"), ("scenic", "already_admitted"), ("hall", "accept")}
    assert {t["spot"] for t in (x["site"] for x in trace.header["terminals"]) if "spot" in t} == \
        {"laoshan", "zhanshan_temple", "jimo_old_town"}


def test_commutes_ramp_up_to_a_peak_around_eight_and_places_open_on_time(small) -> None:  # type: ignore[no-untyped-def]
    commutes = Counter(int(e.t // 1200) for e in small.events
                       if e.scene in ("bus", "metro") and e.t < 7200)  # 20-minute buckets
    peak = max(commutes, key=lambda bucket: commutes[bucket])
    assert peak in (2, 3, 4)  # 07:40–08:40
    assert commutes[0] * 2 < commutes[peak]
    assert min(e.t for e in small.events if e.scene == "scenic") >= 3600
    assert min(e.t for e in small.events if e.scene == "hall") >= 5400
    assert all(e.t < 7200 for e in small.events if e.scene in ("scenic", "hall"))


def test_every_metro_exit_that_passes_follows_its_riders_entry_with_a_plausible_duration(small) -> None:  # type: ignore[no-untyped-def]
    open_since: dict[int, float] = {}
    durations = []
    for e in small.events:
        if e.scene != "metro" or e.expect != "accept":
            continue
        if e.direction == "entry":
            assert e.rider not in open_since
            open_since[e.rider] = e.t
        else:
            durations.append(e.t - open_since.pop(e.rider))
    assert not open_since
    assert 2 * 60 < min(durations) and max(durations) < 3 * 3600
    assert 8 * 60 < sorted(durations)[len(durations) // 2] < 40 * 60  # median trip


def test_each_deny_the_trace_causes_has_its_cause_just_before_it(small) -> None:  # type: ignore[no-untyped-def]
    last_accept: dict[tuple[int, str, str | None], float] = {}
    for e in small.events:
        if e.expect == "accept":
            last_accept[e.rider, e.scene, e.direction if e.scene == "metro" else e.terminal] = e.t
        elif e.expect == "duplicate_tap":
            assert 0 < e.t - last_accept[e.rider, "bus", e.terminal] < 120
        elif e.expect == "passback":
            assert 0 < e.t - last_accept[e.rider, "metro", "entry"] < 60
        elif e.expect == "no_entry":
            assert (e.rider, "metro", "entry") not in last_accept
    assert check(small) == []


def test_checker_refuses_an_outcome_the_rules_do_not_give(small) -> None:  # type: ignore[no-untyped-def]
    trace = dataclasses.replace(small, events=list(small.events))
    first_exit = next(i for i, e in enumerate(trace.events) if e.direction == "exit")
    trace.events[first_exit] = dataclasses.replace(trace.events[first_exit], expect="no_entry")
    assert any("the rules give accept" in p for p in check(trace))
    entry = next(i for i, e in enumerate(trace.events) if e.direction == "entry")
    trace.events.insert(entry + 1, trace.events[entry])  # a second entry, also expected to pass
    assert any("the rules give passback" in p for p in check(trace))


def test_trace_round_trips_through_plain_and_gzipped_files(tmp_path: Path) -> None:
    trace = generate(0.001, seed=3)
    for name in ("t.jsonl", "t.jsonl.gz"):
        write(trace, tmp_path / name)
        again = read(tmp_path / name)
        assert again.header == trace.header and again.events == trace.events


def test_reading_a_file_that_is_not_a_trace_fails_clearly(tmp_path: Path) -> None:
    (tmp_path / "x.jsonl").write_text('{"format": "something-else"}\n')
    with pytest.raises(TraceError, match="not a citycode-trace"):
        read(tmp_path / "x.jsonl")


def test_every_terminal_is_at_a_place_the_city_has(small) -> None:  # type: ignore[no-untyped-def]
    assert [t for t in small.header["terminals"] if site_problems(t["kind"], t["site"])] == []
    assert len({t["terminal"] for t in small.header["terminals"]}) == len(small.header["terminals"])
    assert len({t["site"]["line"] for t in small.header["terminals"] if t["kind"] == "bus"}) == 100


def test_the_full_city_has_ten_thousand_buses_on_all_923_lines() -> None:
    city = Generator(Plan.at(1.0), seed=1)
    city._terminals()
    buses = [t for t in city.terminals if t["kind"] == "bus"]
    assert len(buses) == 10_000 and len({t["site"]["line"] for t in buses}) == 923
    assert sum(1 for t in buses if t["mode"] == "offline") == 500
    assert sum(1 for t in city.terminals if t["kind"] == "metro") == 150 * 12


@pytest.mark.parametrize("scale", ["0", "1.5", "-0.1"])
def test_a_scale_outside_zero_to_one_is_refused(scale: str, tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path / "t.jsonl"), "--scale", scale])


def test_replay_holds_a_riders_next_event_until_the_one_in_flight_is_finished() -> None:
    from loadtest.replay.dispatch import Replay

    trace = generate(0.0002, seed=2)
    passback = next(e for e in trace.events if e.expect == "passback")
    entry = next(e for e in trace.events if e.rider == passback.rider)
    trace.events = [entry, passback]
    replay = Replay(trace, speed=1e6)
    replay.start()
    assert replay.next_for_phone() == entry
    assert replay.next_for_phone(timeout=0.05) is None  # released, but waiting behind the entry
    assert not replay.finished()
    replay.finish(entry, "accept")
    assert replay.next_for_phone() == passback
    replay.finish(passback, "accept")
    assert replay.finished() and replay.outcomes.done == 2
    assert dict(replay.outcomes.unexpected) == {"metro passback → accept": 1}


def test_a_terminals_journal_is_uploaded_in_full_batches_one_at_a_time_with_seqs_from_one() -> None:
    import base64
    import json

    from loadtest.replay.journal import Journals

    claims = base64.urlsafe_b64encode(json.dumps({"iss": "cc", "sub": "p1", "jti": "j"}).encode())
    code = f"h.{claims.decode().rstrip('=')}.s"
    journals = Journals(every=3600, batch=2)
    for _ in range(5):
        journals.add("bus-1", code, "accept", "ok", mode="offline")
    terminal, first = journals.claim()  # type: ignore[misc]
    assert terminal == "bus-1" and [r["seq"] for r in first] == [1, 2]
    assert first[0] | {"scanned_at": 0} == {"seq": 1, "jti": "j", "sub": "p1", "iss": "cc",
                                            "scanned_at": 0, "decision": "accept", "reason": "ok",
                                            "mode": "offline"}
    assert journals.claim() is None  # the terminal's batch is still in flight
    journals.done("bus-1")
    assert [r["seq"] for r in journals.claim()[1]] == [3, 4]  # type: ignore[index]
    journals.done("bus-1")
    assert journals.claim() is None  # one record left, not yet due
    journals.flush_all()
    assert [r["seq"] for r in journals.claim()[1]] == [5]  # type: ignore[index]
    journals.done("bus-1")
    assert journals.empty()

"""The shipped metro network: shape, connectivity, transfers, shortest paths; and its public listing."""
from __future__ import annotations

import itertools
from typing import Any

import pytest
from flask.testing import FlaskClient

from app.city import load
from app.scenes.metro.network import Line, Network, NetworkError, UnknownStation, default_network

from metro_support import reference_hops

QINGDAO_LINES = ["1", "2", "3", "4", "8", "11", "13"]


@pytest.fixture(scope="module")
def network() -> Network:
    return default_network()


def test_network_has_qingdaos_seven_lines_in_line_order(network: Network) -> None:
    assert [line.id for line in network.lines] == QINGDAO_LINES
    assert all(line.name == f"{line.id}号线" for line in network.lines)


def test_network_has_about_150_distinct_stations(network: Network) -> None:
    assert len(network.stations) == len(set(network.stations))
    assert 140 <= len(network.stations) <= 160


def test_file_says_it_is_illustrative() -> None:
    assert "illustrative" in load("metro")["_note"].lower()


def test_every_line_runs_station_to_station(network: Network) -> None:
    for line in network.lines:
        for here, there in zip(line.stations, line.stations[1:]):
            assert there in network.neighbours(here)
            assert network.hops(here, there) == 1
        assert network.hops(line.stations[0], line.stations[-1]) <= len(line.stations) - 1


def test_whole_network_is_connected(network: Network) -> None:
    reference = reference_hops()
    assert set(reference) == set(network.stations)
    assert all(len(reachable) == len(network.stations) for reachable in reference.values())


def test_transfer_stations_are_shared_names(network: Network) -> None:
    transfers = network.transfers
    assert transfers["青岛北站"] == ("1", "3", "8")
    for station, lines in {"五四广场": ("2", "3"), "李村": ("2", "3"), "青岛站": ("1", "3"),
                           "人民会堂": ("3", "4"), "苗岭路": ("2", "11"), "井冈山路": ("1", "13")}.items():
        assert transfers[station] == lines
    assert all(any(s in transfers for s in line.stations) for line in network.lines)


@pytest.mark.parametrize(("origin", "destination", "stops"), [
    ("五四广场", "五四广场", 0),
    ("五四广场", "江西路", 1),
    ("五四广场", "李村", 11),    # line 3 (11) beats line 2 (14)
    ("青岛站", "青岛北站", 11),  # line 1 (11) beats line 3 (21)
    ("五四广场", "台东", 3),     # line 2
    ("五四广场", "人民会堂", 5),  # line 3 (5) beats line 2 + line 4 (3 + 4)
    ("王家港", "胶州北站", 36),  # line 1 to 青岛北站 (24), line 8 (12)
    ("李村公园", "鳌山湾", 28),  # line 2 to 苗岭路 (7), line 11 (21)
])
def test_shortest_paths_known_by_hand(network: Network, origin: str, destination: str, stops: int) -> None:
    assert network.hops(origin, destination) == stops
    path = network.path(origin, destination)
    assert (path[0], path[-1], len(path)) == (origin, destination, stops + 1)


def test_shortest_path_via_the_faster_line(network: Network) -> None:
    assert network.path("青岛站", "青岛北站")[1] == "中山路"  # line 1, not line 3's 人民会堂


def test_shortest_paths_are_symmetric_and_match_a_plain_bfs(network: Network) -> None:
    reference = reference_hops()
    for a, b in itertools.product(network.stations, repeat=2):
        assert network.hops(a, b) == network.hops(b, a) == reference[a][b]


def test_every_path_is_a_walk_along_the_tracks(network: Network) -> None:
    for a, b in itertools.combinations(network.stations[::7], 2):
        path = network.path(a, b)
        assert len(path) == network.hops(a, b) + 1 and len(set(path)) == len(path)
        assert all(there in network.neighbours(here) for here, there in zip(path, path[1:]))


def test_unknown_station_is_an_error_not_a_fare(network: Network) -> None:
    assert "火星站" not in network
    with pytest.raises(UnknownStation):
        network.hops("火星站", "李村")


@pytest.mark.parametrize("lines", [
    [],
    [{"id": "1", "name": "1号线", "stations": ["甲", "乙"]}, {"id": "1", "name": "又1号线", "stations": ["乙", "丙"]}],
    [{"id": "1", "name": "1号线", "stations": ["甲", "乙"]}, {"id": "2", "name": "2号线", "stations": ["丙", "丁"]}],
    [{"id": "1", "name": "1号线", "stations": ["甲", "乙", "甲"]}],
    [{"id": "1", "name": "1号线", "stations": ["甲"]}],
    [{"id": "1", "name": "1号线", "stations": ["甲", " 乙"]}],
    [{"id": 1, "name": "1号线", "stations": ["甲", "乙"]}],
    ["1号线"],
], ids=["empty", "duplicate-id", "disconnected", "loop", "one-station", "padded-name", "int-id", "not-object"])
def test_bad_network_files_are_rejected(lines: list[Any]) -> None:
    with pytest.raises(NetworkError):
        Network.from_config({"lines": lines})


def test_small_network_from_lines() -> None:
    network = Network([Line("A", "A线", ("甲", "乙", "丙")), Line("B", "B线", ("丁", "乙", "戊"))])
    assert network.transfers == {"乙": ("A", "B")}
    assert network.hops("甲", "戊") == 2 and network.path("甲", "戊") == ("甲", "乙", "戊")


# -- GET /v1/network/metro -------------------------------------------------------------------
def test_public_listing_needs_no_token_and_matches_the_file(client: FlaskClient) -> None:
    response = client.get("/v1/network/metro")
    assert response.status_code == 200
    body = response.get_json()
    assert body == {"lines": [{"id": line["id"], "name": line["name"], "stations": line["stations"]}
                              for line in load("metro")["lines"]]}
    assert [line["id"] for line in body["lines"]] == QINGDAO_LINES


def test_public_listing_shares_transfer_names(client: FlaskClient) -> None:
    lines = client.get("/v1/network/metro").get_json()["lines"]
    by_id = {line["id"]: set(line["stations"]) for line in lines}
    assert "青岛北站" in by_id["1"] & by_id["3"] & by_id["8"]
    assert "五四广场" in by_id["2"] & by_id["3"]


def test_listing_is_in_the_openapi_document(client: FlaskClient) -> None:
    paths = client.get("/openapi.json").get_json()["paths"]
    assert "get" in paths["/v1/network/metro"]

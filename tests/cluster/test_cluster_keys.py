"""The slot design (app.store.slots) on the real cluster: every script's keys hash to one slot,
rider shards spread evenly over the masters, a code is spent once whatever scene scans it, and
token revocations reach listeners through the cluster's pub/sub."""
from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from flask import Flask
from redis.cluster import RedisCluster
from flask.testing import FlaskClient

from app.auth import PrincipalCache, Principal, Role, announce
from app.codes.shards import SHARDS, TAGS
from app.records.stream import record_streams
from app.scenes import atomic
from app.store.redis import connect, is_cluster
from app.store.slots import rider_tag, shard_of, slot_of
from tests.cluster.conftest import LocalCluster
from tests.helpers import listening
from tests.helpers import bearer, terminal
from tests.records.test_scan_records import test_each_scene_records_what_the_terminal_was_told
from tests.scenes.bus_scenic_support import bureau, citizen, fresh_code, scan
from tests.scenes.metro_support import mint_code


def test_rider_tags_are_pinned_and_each_owns_an_equal_share_of_the_slots() -> None:
    assert SHARDS == 64 and TAGS[:3] == ("r00.112", "r01.29", "r02.51")  # moving them moves every rider
    for index, tag in enumerate(TAGS):
        assert index * 256 <= slot_of("{" + tag + "}") < (index + 1) * 256
    assert rider_tag("p_1") in slot_key_examples("p_1")


def slot_key_examples(sub: str) -> str:
    from app.scenes.bus import tap_key
    from app.scenes.metro.trips import trip_key

    return tap_key("鲁B-1", sub) + trip_key(sub)


def test_rider_shards_spread_evenly_over_the_three_masters(redis_client: Any) -> None:
    owners = Counter(redis_client.nodes_manager.get_node_from_slot(slot_of(name)).name
                     for name in record_streams("cc:scans")[:SHARDS])
    assert sorted(owners.values()) == [21, 21, 22]


def test_every_script_of_every_scene_keeps_its_keys_in_one_slot(
        app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[str, list[str]]] = []
    original = atomic.AtomicScript._call_cluster

    def recording(self: atomic.AtomicScript, keys: Any, args: Any) -> Any:
        seen.append((self.name, list(keys)))
        return original(self, keys, args)

    monkeypatch.setattr(atomic.AtomicScript, "_call_cluster", recording)
    assert is_cluster(app.extensions["citycode"].redis)
    test_each_scene_records_what_the_terminal_was_told(app, client)  # bus, metro, hall, denies
    visitor = citizen(client, bureau(client), "scenic_annual_pass")
    assert scan(client, terminal(client, "scenic", spot="laoshan"), fresh_code(client, visitor))["decision"] == "accept"
    names = {name for name, _ in seen}
    assert {"bus.tap", "metro.trip", "scenic.reserve", "scenic.admit", "hall.take", "hall.claim",
            "scan.deny"} <= names, names
    for name, keys in seen:
        assert len({slot_of(key) for key in keys}) == 1, (name, keys)


def test_a_code_is_spent_once_across_scenes_and_plain_verification(app: Flask, client: FlaskClient) -> None:
    code = mint_code(app, "p_cross_scene")
    bus, hall = terminal(client, "bus"), terminal(client, "hall", hall="city")
    first = client.post("/v1/verify", headers=bearer(bus), json={"code": code}).get_json()
    again = client.post("/v1/verify", headers=bearer(hall), json={"code": code}).get_json()
    assert (first["decision"], again["reason"]) == ("accept", "replayed")
    replay = app.extensions["citycode"].redis.keys("cc:replay:*", target_nodes=RedisCluster.PRIMARIES)
    assert len(replay) == 1 and rider_tag("p_cross_scene").encode() in replay[0]


def test_token_revocations_reach_every_listener_through_the_cluster(redis_cluster: LocalCluster,
                                                                    redis_client: Any) -> None:
    client = connect(redis_cluster.url, socket_timeout=2)
    caches = [PrincipalCache(client=client), PrincipalCache(client=client)]
    listening(*caches)
    principal = Principal(Role.TERMINAL, "trm_1", "tok_1")
    for cache in caches:
        cache.resolve("cct_abc", lambda: principal)
        assert cache.resolve("cct_abc", lambda: None) is principal  # cached
    assert announce(redis_client)  # every listener acknowledged
    assert all(cache.resolve("cct_abc", lambda: None) is None for cache in caches)
    deaf = redis_client.pubsub()
    deaf.subscribe("cc:auth:revoked")  # at the channel's master too: counted, never acknowledges
    deaf.get_message(timeout=1)
    assert not announce(redis_client, wait=0.2)
    deaf.close()
    for cache in caches:
        cache.close()
    client.close()


def test_the_writer_drains_every_shard_across_the_masters(app: Flask, client: FlaskClient) -> None:
    from tests.helpers import drain

    bus = terminal(client, "bus")
    riders = [f"p_spread_{i}" for i in range(40)]
    for rider in riders:
        body = client.post("/v1/verify", headers=bearer(bus), json={"code": mint_code(app, rider)}).get_json()
        assert body["decision"] == "accept"
    assert len({shard_of(r) for r in riders}) > 20
    assert drain(app) == len(riders)

"""A master of the cluster is killed while gates scan: its riders get explicit ``degraded`` answers
until its replica is promoted (and has a replica again: every scan waits for one), and no code is
ever accepted twice — not the codes accepted just before the kill, not the ones refused during it."""
from __future__ import annotations

import threading
import time
from collections import defaultdict
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from app.store.slots import slot_of
from tests.cluster.conftest import LocalCluster
from tests.helpers import bearer, terminal
from tests.scenes.metro_support import mint_code


def _riders_on(app: Flask, port: int, count: int) -> list[str]:
    """Pseudonyms whose rider shard lives on the master at ``port``."""
    from app.store.slots import rider_tag

    cluster = app.extensions["citycode"].redis
    found: list[str] = []
    i = 0
    while len(found) < count:
        sub = f"p_failover_{i}"
        if cluster.nodes_manager.get_node_from_slot(slot_of(rider_tag(sub))).port == port:
            found.append(sub)
        i += 1
    return found


def _replica_of(cluster: LocalCluster, port: int) -> int:
    for node in cluster.nodes:
        if node.proc is None:
            continue
        role = node.client().execute_command("ROLE")
        if role[0] == b"slave" and int(role[2]) == port:
            return node.port
    raise AssertionError(f"no replica follows {port}")


def _wait(condition: Any, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_killing_a_master_during_scans_answers_degraded_and_never_accepts_a_code_twice(
        app: Flask, client: FlaskClient, redis_cluster: LocalCluster) -> None:
    gate = terminal(client, "bus")
    master = app.extensions["citycode"].redis.nodes_manager.get_node_from_slot(0).port
    replica = _replica_of(redis_cluster, master)
    riders = _riders_on(app, master, 200)
    codes = [mint_code(app, rider) for rider in riders]
    answers: dict[str, list[str]] = defaultdict(list)
    accepted: list[str] = []
    stop = threading.Event()
    errors: list[BaseException] = []

    def scan(code: str, own: FlaskClient) -> str:
        body = own.post("/v1/verify", headers=bearer(gate), json={"code": code}).get_json()
        reason = "accept" if body["decision"] == "accept" else body["reason"]
        answers[code].append(reason)
        return reason

    def gates() -> None:  # fresh codes in turn, each followed by a replay of an accepted one
        own = app.test_client()
        try:
            i = 0
            while not stop.is_set():
                if scan(codes[i % len(codes)], own) == "accept":
                    accepted.append(codes[i % len(codes)])
                if accepted:
                    scan(accepted[i % len(accepted)], own)
                i += 1
                time.sleep(0.002)
        except BaseException as exc:  # noqa: BLE001 - reported by the test thread
            errors.append(exc)

    scanning = threading.Thread(target=gates)
    scanning.start()
    try:
        _wait(lambda: len(accepted) >= 20, "scans did not start")
        redis_cluster.node(master).kill()  # SIGKILL, mid-scans
        killed_at = len(accepted)
        _wait(lambda: sum(a.count("degraded") for a in list(answers.values())) >= 5,
              "no degraded answers while the master was down")
        redis_cluster.node(replica).client().execute_command("CLUSTER", "FAILOVER", "TAKEOVER")
        _wait(lambda: redis_cluster.role_of(replica) == "master", "the replica was not promoted")
        redis_cluster.node(master).start()  # back, as the promoted replica's replica
        _wait(lambda: redis_cluster.role_of(master) == "slave", "the old master did not rejoin as replica")
        redis_cluster.wait_healthy()
        _wait(lambda: len(accepted) >= killed_at + 20, "scans did not accept again after the failover")
    finally:
        stop.set()
        scanning.join(30)
    assert not errors, errors

    final = app.test_client()
    for code in codes:  # every code once more, on the promoted master
        scan(code, final)
    twice = [code for code, said in answers.items() if said.count("accept") > 1]
    assert twice == []
    reasons = {reason for said in answers.values() for reason in said}
    assert reasons <= {"accept", "replayed", "degraded"}, reasons
    assert all(answers[code].count("accept") == 1 for code in accepted)
    assert any("degraded" in said and "accept" in said for said in answers.values())  # refused, later used

"""The cluster fixture and the service's cluster client: the cluster is real, keys route."""
from __future__ import annotations

from tests.cluster.conftest import LocalCluster


def test_the_cluster_has_three_masters_each_with_a_replica(redis_cluster: LocalCluster, redis_client) -> None:  # type: ignore[no-untyped-def]
    roles = sorted(redis_cluster.role_of(n.port) for n in redis_cluster.nodes)
    assert roles == ["master"] * 3 + ["slave"] * 3
    assert redis_client.set("a", 1) and redis_client.set("b", 2)
    assert redis_client.get("a") == b"1" and redis_client.get("b") == b"2"

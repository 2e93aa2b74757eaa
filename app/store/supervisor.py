"""Keeps the embedded redis-server running for the life of the service.

If it dies (OOM killer, a crash, an operator's mistake) the gates get ``degraded`` answers and
readiness turns 503 until it is back; the supervisor restarts it on the same socket and data dir
after a short delay, so the AOF brings every replay record back with it.

The same supervisor keeps the scan-record writer process running (``app.records.process``): any
child with ``start``/``wait_exit``/``stop``/``pid``/``data_dir``, named in the log by ``name``.
"""
from __future__ import annotations

import logging
import threading

from app.store.embedded import EmbeddedRedis

log = logging.getLogger("citycode.serve")


class RedisSupervisor:
    def __init__(self, embedded: EmbeddedRedis, *, restart_delay: float = 2.0,
                 name: str = "embedded redis-server") -> None:
        self.embedded = embedded
        self.name = name
        self.restart_delay = restart_delay
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self) -> str:
        """Start redis-server and the watcher thread; return the URL (stable across restarts)."""
        url = self.embedded.start()
        # The watcher forks the restarted servers, and PR_SET_PDEATHSIG is tied to the forking
        # thread: it lives until stop(), so a restarted server still dies with the service.
        self._thread = threading.Thread(target=self._watch, name="redis-supervisor", daemon=True)
        self._thread.start()
        return url

    def _watch(self) -> None:
        while not self._stopping.is_set():
            code = self.embedded.wait_exit()
            if self._stopping.wait(self.restart_delay):
                return
            with self._lock:
                if self._stopping.is_set():
                    return
                log.error("%s exited; restarting it", self.name,
                          extra={"returncode": code, "dir": str(self.embedded.data_dir)})
                try:
                    self.embedded.start()
                except RuntimeError as exc:  # try again after the delay
                    log.error("%s did not restart", self.name, extra={"error": str(exc)})
                    continue
            log.warning("%s restarted", self.name, extra={"pid": self.embedded.pid})

    def stop(self) -> None:
        self._stopping.set()
        with self._lock:
            self.embedded.stop()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

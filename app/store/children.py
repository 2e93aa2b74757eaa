"""Child processes the service's master owns (the embedded redis-server, the record writer):
they die with the master, even after SIGKILL, and stop gracefully, then by force."""
from __future__ import annotations

import ctypes
import os
import signal
import subprocess
from typing import Callable

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> Callable[[], None]:
    """A ``preexec_fn`` that makes the child get SIGTERM when its parent dies.

    ``PR_SET_PDEATHSIG`` fires when the *thread* that forked the child exits, not the whole
    process: start children from the main thread or a long-lived one.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    parent = os.getpid()

    def preexec() -> None:
        if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
            os._exit(127)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(0)

    return preexec


def stop(proc: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM, then SIGKILL after ``timeout``; returns once the child is reaped."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
    proc.wait()

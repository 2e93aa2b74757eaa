"""Everything the service needs before workers start, done once in the gunicorn master."""
from __future__ import annotations

import fcntl
import logging
import os
import shutil
from pathlib import Path

import redis

from app import db
from app.auth import ensure_admin_token
from app.config import Settings
from app.registry.pii import PiiVault
from app.signing.keyring import KeyStore
from app.store.embedded import EmbeddedRedis
from app.store.redis import connect
from app.store.supervisor import RedisSupervisor

log = logging.getLogger("citycode.serve")


_lock_handle: object = None


def lock_data_dir(settings: Settings) -> None:
    """One serving instance per data dir: an exclusive lock held for the master's lifetime."""
    global _lock_handle
    handle = open(settings.data_dir / "serve.lock", "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise RuntimeError(f"data dir {settings.data_dir} is already in use by another citycode serve") from None
    _lock_handle = handle


def prepare_metrics_dir(settings: Settings) -> Path:
    """A fresh folder for prometheus-client's per-worker files (stale ones would skew counters)."""
    path = Path(os.environ.get("PROMETHEUS_MULTIPROC_DIR") or settings.data_dir / "metrics")
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True, mode=0o700)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)
    return path


def start_embedded_redis(settings: Settings) -> RedisSupervisor | None:
    """With no ``REDIS_URL``, start a real redis-server in the data dir (restarted if it dies) and
    point workers at it."""
    if settings.redis_url:
        warn_if_not_durable(settings.redis_url)
        return None
    supervisor = RedisSupervisor(EmbeddedRedis(settings.redis_dir),
                                 restart_delay=settings.redis_restart_seconds)
    os.environ["REDIS_URL"] = supervisor.start()
    log.info("embedded redis started", extra={"pid": supervisor.embedded.pid, "dir": str(settings.redis_dir)})
    return supervisor


def start_record_writer(settings: Settings) -> RedisSupervisor | None:
    """The scan-record writer (``app.records``) as a supervised child of the master: restarted
    when it dies, stopped on shutdown, dead with the master. Off with CITYCODE_RECORDS_WRITER=0."""
    if not settings.records_writer:
        log.warning("record writer not started (CITYCODE_RECORDS_WRITER=0): run it elsewhere, "
                    "or scans stay in Redis and readiness fails once they are too old")
        return None
    from app.records.process import WriterProcess

    supervisor = RedisSupervisor(WriterProcess(settings.data_dir), restart_delay=1.0,  # type: ignore[arg-type]
                                 name="record writer")
    supervisor.start()
    log.info("record writer started", extra={"pid": supervisor.embedded.pid})
    return supervisor


def warn_if_not_durable(url: str) -> None:
    """Replay records must survive a Redis restart (DESIGN.md): say so loudly if AOF is off."""
    client = connect(url)
    try:
        appendonly = client.config_get("appendonly").get("appendonly")
    except (redis.RedisError, OSError) as exc:  # managed Redis may forbid CONFIG; not fatal
        log.warning("cannot check Redis persistence", extra={"error": type(exc).__name__})
        return
    finally:
        client.close()
    if appendonly != "yes":
        log.warning("REDIS_URL has appendonly=%s: after a Redis restart used codes could pass "
                    "again until they expire; enable AOF (appendonly yes)", appendonly)


def prepare_state(settings: Settings) -> None:
    """Migrate the database, make sure signing keys exist, and an admin token if none is configured."""
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    db.migrate(settings.resolved_database_url)
    store = KeyStore(settings.resolved_keys_dir)
    if not store.exists():
        store.generate(settings.key_algorithm)
        log.info("signing keys generated", extra={"dir": str(store.directory)})
    store.load()  # refuse to start on a key file with unsafe permissions
    if PiiVault.create_if_missing(store.directory):
        log.info("data encryption secret generated", extra={"dir": str(store.directory)})
    PiiVault.load(store.directory)
    if settings.admin_token:
        return
    database = db.Database(settings.resolved_database_url)
    try:
        with database.session() as session:
            written = ensure_admin_token(session, settings.admin_token_file)
    finally:
        database.dispose()
    where = written or str(settings.admin_token_file)
    log.warning("admin token %s %s (set CITYCODE_ADMIN_TOKEN to use your own)",
                "written to" if written else "is in", where)

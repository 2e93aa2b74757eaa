"""Settings: read once from the environment, with embedded defaults for every value."""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Mapping

DEFAULT_CODE_TTL_SECONDS = 60
DEFAULT_MAX_BODY_BYTES = 64 * 1024
DEFAULT_DISCLOSURE_TTL_SECONDS = 300
DEFAULT_TAPS_MAX_BODY_BYTES = 2 * 2**20  # POST /v1/taps only: 1,000 full records fit with room


class ConfigError(ValueError):
    """A setting in the environment cannot be used."""


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low} and {high}, got {value}")
    return value


@dataclass(frozen=True)
class Settings:
    """Everything the service can be told from outside.

    With nothing set, the data directory holds the SQLite file, the embedded Redis data and the
    keys; ``DATABASE_URL`` and ``REDIS_URL`` switch to external servers.
    """

    data_dir: Path
    database_url: str | None = None
    redis_url: str | None = None
    admin_token: str | None = field(default=None, repr=False)
    code_ttl_seconds: int = DEFAULT_CODE_TTL_SECONDS
    keys_dir: Path | None = None
    key_algorithm: str = "ES256"
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    clock_leeway_seconds: int = 5
    disclosure_ttl_seconds: int = DEFAULT_DISCLOSURE_TTL_SECONDS  # how long a request waits for an answer
    redis_restart_seconds: int = 2  # the embedded redis-server is restarted this long after it dies
    log_level: str = "INFO"
    # Tap uploads (app.taps): body limit of POST /v1/taps, and the anomaly thresholds.
    taps_max_body_bytes: int = DEFAULT_TAPS_MAX_BODY_BYTES
    reader_max_trust_age_seconds: int = 3600  # an accept on older trust material: stale_trust
    travel_max_speed_kmh: int = 120  # faster than this between two taps: impossible_travel ...
    travel_min_distance_m: int = 2000  # ... if they are at least this far apart
    online_use_window_seconds: int = 900  # how far around a tap to look for online uses of its code
    # Scan records (app.records): the stream scripts append to, and the writer draining it to SQL.
    records_stream: str = "cc:scans"  # base name: scripts append to <base>:{rNN} (app.store.slots)
    redis_wait_replicas: int | None = None  # replicas a scan's writes must reach (None: 1 on a cluster, else 0)
    records_writer: bool = True  # `citycode serve` runs the writer (off: it runs elsewhere)
    records_batch: int = 1000  # records per SQL transaction, at most
    records_block_ms: int = 100  # how long the writer waits for records when the stream is empty
    records_linger_ms: int = 50  # a batch that was not full: the next read waits this long after it
    records_max_lag_seconds: int = 60  # readiness fails when the oldest undrained record is older
    mint_cache_seconds: int = 60  # how long minting may use a citizen's cached entitlements (0: never)
    audit_head_seconds: int = 1  # the writer signs an audit tree head at most this often (0: every leaf)
    device_cert_hours: int = 24  # validity of a device certificate (offline minting, CC2 codes)
    reader_key_hours: int = 24  # rotation period of the reader keys sealed CC3 codes are encrypted to

    @property
    def key_retire_seconds(self) -> int:
        """How long a retired signing key stays published: past the end of every JWS code and
        every device certificate it signed."""
        return max(self.code_ttl_seconds, self.device_cert_hours * 3600) + self.clock_leeway_seconds

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        env = os.environ if env is None else env
        data_dir = Path(env.get("CITYCODE_DATA_DIR") or "var").expanduser().resolve()
        keys_dir = env.get("CITYCODE_KEYS_DIR")
        algorithm = env.get("CITYCODE_KEY_ALGORITHM", "ES256") or "ES256"
        if algorithm not in ("ES256", "EdDSA"):
            raise ConfigError(f"CITYCODE_KEY_ALGORITHM must be ES256 or EdDSA, got {algorithm!r}")
        return cls(
            data_dir=data_dir,
            database_url=env.get("DATABASE_URL") or None,
            redis_url=env.get("REDIS_URL") or None,
            admin_token=env.get("CITYCODE_ADMIN_TOKEN") or None,
            code_ttl_seconds=_int(env, "CITYCODE_CODE_TTL_SECONDS", DEFAULT_CODE_TTL_SECONDS, 10, 3600),
            keys_dir=Path(keys_dir).expanduser().resolve() if keys_dir else None,
            key_algorithm=algorithm,
            max_body_bytes=_int(env, "CITYCODE_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES, 1024, 16 * 2**20),
            clock_leeway_seconds=_int(env, "CITYCODE_CLOCK_LEEWAY_SECONDS", 5, 0, 120),
            redis_restart_seconds=_int(env, "CITYCODE_REDIS_RESTART_SECONDS", 2, 0, 300),
            disclosure_ttl_seconds=_int(env, "CITYCODE_DISCLOSURE_TTL_SECONDS",
                                        DEFAULT_DISCLOSURE_TTL_SECONDS, 30, 3600),
            log_level=(env.get("CITYCODE_LOG_LEVEL") or "INFO").upper(),
            taps_max_body_bytes=_int(env, "CITYCODE_TAPS_MAX_BODY_BYTES", DEFAULT_TAPS_MAX_BODY_BYTES,
                                     64 * 1024, 64 * 2**20),
            reader_max_trust_age_seconds=_int(env, "CITYCODE_READER_MAX_TRUST_AGE_SECONDS", 3600,
                                              60, 30 * 86400),
            travel_max_speed_kmh=_int(env, "CITYCODE_TRAVEL_MAX_SPEED_KMH", 120, 10, 2000),
            travel_min_distance_m=_int(env, "CITYCODE_TRAVEL_MIN_DISTANCE_M", 2000, 0, 1_000_000),
            online_use_window_seconds=_int(env, "CITYCODE_ONLINE_USE_WINDOW_SECONDS", 900, 60, 86400),
            records_stream=env.get("CITYCODE_RECORDS_STREAM") or "cc:scans",
            redis_wait_replicas=(None if not env.get("CITYCODE_REDIS_WAIT_REPLICAS") else
                                 _int(env, "CITYCODE_REDIS_WAIT_REPLICAS", 0, 0, 5)),
            records_writer=_int(env, "CITYCODE_RECORDS_WRITER", 1, 0, 1) == 1,
            records_batch=_int(env, "CITYCODE_RECORDS_BATCH", 1000, 1, 10000),
            records_block_ms=_int(env, "CITYCODE_RECORDS_BLOCK_MS", 100, 1, 5000),
            records_linger_ms=_int(env, "CITYCODE_RECORDS_LINGER_MS", 50, 0, 1000),
            records_max_lag_seconds=_int(env, "CITYCODE_RECORDS_MAX_LAG_SECONDS", 60, 1, 86400),
            mint_cache_seconds=_int(env, "CITYCODE_MINT_CACHE_SECONDS", 60, 0, 3600),
            audit_head_seconds=_int(env, "CITYCODE_AUDIT_HEAD_SECONDS", 1, 0, 3600),
            device_cert_hours=_int(env, "CITYCODE_DEVICE_CERT_HOURS", 24, 1, 168),
            reader_key_hours=_int(env, "CITYCODE_READER_KEY_HOURS", 24, 1, 168),
        )

    def with_overrides(self, **changes: object) -> "Settings":
        return replace(self, **changes)  # type: ignore[arg-type]

    @property
    def resolved_keys_dir(self) -> Path:
        return self.keys_dir or self.data_dir / "keys"

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'citycode.sqlite3'}"

    @property
    def resolved_wait_replicas(self) -> int:
        """Replicas every scan script waits for (``WAIT``): as set, else 1 on a Redis Cluster."""
        if self.redis_wait_replicas is not None:
            return self.redis_wait_replicas
        url = self.redis_url or ""
        return 1 if url.split("://", 1)[0] in ("redis+cluster", "rediss+cluster") else 0

    @property
    def redis_dir(self) -> Path:
        return self.data_dir / "redis"

    @property
    def admin_token_file(self) -> Path:
        return self.data_dir / "admin-token"

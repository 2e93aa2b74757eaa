"""Bearer tokens for the four roles: random, stored only as hashes, compared in constant time.

Revocation reaches every worker before the revoking request is answered: each worker's
``PrincipalCache`` has a listener thread subscribed to ``CHANNEL``. Whoever revokes a token
commits, then ``announce``s: a new auth generation (``GENERATION_KEY``) is set and published, every
listening worker voids its cached principals and acknowledges, and ``announce`` returns when all
have (at most ``ACK_WAIT_SECONDS``). A cache hit costs no Redis command. A worker whose listener is
not subscribed (starting, Redis restarting) checks the generation with one GET per request
instead; one that cannot reach Redis caches nothing. Last use is stamped in Redis
(``LAST_USED_KEY``) at most once a ``touch_every`` per token and worker, never in SQL.

On a Redis Cluster (``redis+cluster://``) the listeners subscribe at the master owning
``CHANNEL``'s slot and ``announce`` publishes there, so its count of listeners is every listener;
when that master fails over, the listeners lose their connection, ask per request meanwhile and
subscribe again at the promoted replica.
"""
from __future__ import annotations

import enum
import hashlib
import hmac
import logging
import os
import secrets
import threading
import time
import uuid
import weakref
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable

import redis
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.models import ApiToken
from app.store.redis import is_cluster

log = logging.getLogger(__name__)

GENERATION_KEY = "cc:auth:generation"
LAST_USED_KEY = "cc:auth:last-used"  # hash: token id -> epoch seconds of its last use (coarse)
CHANNEL = "cc:auth:revoked"  # announcements: the new generation; listeners acknowledge on ACK_PREFIX + it
ACK_PREFIX = "cc:auth:ack:"
ACK_WAIT_SECONDS = 1.0

MAX_TOKEN_LENGTH = 128


class Role(str, enum.Enum):
    ADMIN = "admin"
    ISSUER = "issuer"
    CITIZEN = "citizen"
    TERMINAL = "terminal"


_PREFIX = {Role.ADMIN: "cca_", Role.ISSUER: "cci_", Role.CITIZEN: "ccc_", Role.TERMINAL: "cct_"}


@dataclass(frozen=True)
class Principal:
    """Who is calling: a role and the id of the admin, issuer, citizen or terminal."""

    role: Role
    principal_id: str
    token_id: str | None = field(default=None, compare=False)  # None for the environment's admin token


@dataclass(frozen=True)
class IssuedToken:
    """A token just created: its row id and the plain token, which is shown once, never stored."""

    token_id: str
    token: str


def token_hash(token: str) -> bytes:
    """SHA-256 is enough: tokens carry 256 random bits, so there is nothing to brute-force."""
    return hashlib.sha256(token.encode("utf-8")).digest()


def new_token(role: Role) -> str:
    return _PREFIX[role] + secrets.token_urlsafe(32)


def mint_token(session: Session, role: Role, principal_id: str, label: str | None = None) -> IssuedToken:
    """Create and store (as a hash) a new token; the plain token is returned once, never stored."""
    token = new_token(role)
    row = ApiToken(id=uuid.uuid4().hex, role=role.value, principal_id=principal_id,
                   token_hash=token_hash(token), created_at=datetime.now(timezone.utc), label=label)
    session.add(row)
    return IssuedToken(row.id, token)


def issue_token(session: Session, role: Role, principal_id: str) -> str:
    """Create and store (as a hash) a new token; the plain token is returned once, never stored."""
    return mint_token(session, role, principal_id).token


def authenticate(session: Session, token: str, env_admin_token: str | None) -> Principal | None:
    """Return the principal a presented token belongs to, or None."""
    if not token or len(token) > MAX_TOKEN_LENGTH:
        return None
    presented = token_hash(token)
    if env_admin_token is not None and hmac.compare_digest(presented, token_hash(env_admin_token)):
        return Principal(Role.ADMIN, "admin")
    row = session.scalars(select(ApiToken).where(ApiToken.token_hash == presented)).first()
    if row is None or row.revoked_at is not None or not hmac.compare_digest(row.token_hash, presented):
        return None
    if row.role == Role.ADMIN.value and env_admin_token is not None:
        return None  # the environment's admin token replaces any generated one
    return Principal(Role(row.role), row.principal_id, row.id)


def announce(client: "redis.Redis[bytes]", *, wait: float = ACK_WAIT_SECONDS) -> bool:
    """Tell every worker that tokens were revoked; call after committing. Returns once every
    listening worker has dropped its cached principals (it acknowledges after doing so), so the
    caller's answer reaches its client only when the revoked tokens are refused everywhere.

    Workers not listening (starting up, Redis hiccup) check the generation set here on each
    request instead. False when Redis could not be told, or not every listener answered within
    ``wait`` seconds (a worker stuck that long drops its cache when its listener next runs);
    without Redis at all, a worker that cached a revoked token keeps it for at most the cache's
    ``ttl``."""
    generation = secrets.token_hex(8)
    acks = ACK_PREFIX + generation
    try:
        if is_cluster(client):
            # Listeners subscribe at the master owning CHANNEL's slot (redis-py's cluster pubsub);
            # PUBLISH there counts them all (a cluster forwards the message to every node, but
            # counts only the receiving node's subscribers).
            client.set(GENERATION_KEY, generation)
            listeners = int(client.publish(CHANNEL, generation,
                                           target_nodes=client.get_node_from_key(CHANNEL)))
        else:
            pipe = client.pipeline(transaction=False)
            pipe.set(GENERATION_KEY, generation)
            pipe.publish(CHANNEL, generation)
            listeners = int(pipe.execute()[1])
        deadline = time.monotonic() + wait
        while (acked := int(client.llen(acks))) < listeners:
            if time.monotonic() >= deadline:
                log.warning("token revocation not acknowledged by every worker in time",
                            extra={"listeners": listeners, "acknowledged": acked})
                return False
            time.sleep(0.001)
        client.delete(acks)
        return True
    except (redis.RedisError, OSError) as exc:
        log.warning("could not announce a token revocation", extra={"error": type(exc).__name__})
        return False


def last_used(client: "redis.Redis[bytes]", token_ids: Iterable[str]) -> dict[str, datetime | None]:
    """When each token was last used, as stamped by the workers (to within their ``touch_every``);
    None when never, or when Redis cannot be asked."""
    ids = list(token_ids)
    if not ids:
        return {}
    try:
        stamps = client.hmget(LAST_USED_KEY, ids)
    except (redis.RedisError, OSError):
        return dict.fromkeys(ids)
    return {token_id: None if stamp is None else datetime.fromtimestamp(int(stamp), timezone.utc)
            for token_id, stamp in zip(ids, stamps)}


def forget_last_used(client: "redis.Redis[bytes]", token_ids: Iterable[str]) -> None:
    """Drop the last-use stamps of revoked tokens (best effort)."""
    ids = list(token_ids)
    if ids:
        try:
            client.hdel(LAST_USED_KEY, *ids)
        except (redis.RedisError, OSError):
            pass


@dataclass(frozen=True)
class _Entry:
    expires: float
    principal: Principal
    epoch: int  # the cache's epoch before the database was read
    generation: bytes | None  # Redis's auth generation before the database was read (GET mode)


class PrincipalCache:
    """Remembers recently authenticated tokens (by hash) for at most ``ttl`` seconds, so a gate's
    every scan does not cost a database query, and forgets them all when a revocation is announced.

    With a Redis ``client``, ``resolve`` keeps the cache only while the worker can learn of
    revocations: normally through a listener thread subscribed to ``CHANNEL`` (a hit then costs
    no Redis command at all; each announcement moves the cache's epoch, which voids every entry,
    before it is acknowledged); while the listener is not subscribed (first requests, Redis
    restarting), through one GET of ``GENERATION_KEY`` per request; when Redis cannot be asked,
    not at all (every request asks the database). Without a client, ``get``/``put`` give the
    plain ``ttl`` bound.
    """

    def __init__(self, ttl: float = 10.0, max_entries: int = 50_000,
                 client: "redis.Redis[bytes] | None" = None, touch_every: float = 60.0,
                 listen: bool = True) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self.client = client
        self.touch_every = touch_every
        self.listen = listen and client is not None
        self._entries: dict[bytes, _Entry] = {}
        self._touched: dict[str, float] = {}  # token id -> monotonic time of its last stamp
        self._epoch = 0  # moved (only) by the listener: subscribed, revocation heard, connection lost
        self._listening = False
        self._listener: _Listener | None = None
        self._lock = threading.Lock()
        self._closed = False
        if self.listen:
            _forget_at_fork(self)

    @property
    def listening(self) -> bool:
        """True while revocations reach this cache through its subscription."""
        return self._listening

    def get(self, token: str) -> Principal | None:
        hit = self._entries.get(token_hash(token))
        if hit is None or hit.expires < time.monotonic():
            return None
        return hit.principal

    def put(self, token: str, principal: Principal, epoch: int = 0, generation: bytes | None = None) -> None:
        if len(self._entries) >= self.max_entries:
            self._entries.clear()
        self._entries[token_hash(token)] = _Entry(time.monotonic() + self.ttl, principal, epoch, generation)

    def resolve(self, token: str, load: Callable[[], Principal | None]) -> Principal | None:
        """The principal of ``token``: from the cache while no revocation was announced since
        it was read, else ``load()`` (the database)."""
        if self.client is None:
            principal = self.get(token)
            if principal is None:
                principal = load()
                if principal is not None:
                    self.put(token, principal)
            return principal
        if not self._listening and self.listen:
            self._start_listener()
        # Before the database is read; in this order, as the listener sets them in the other
        # (epoch, then listening, when subscribed): a listening reader never sees a pre-subscription epoch.
        listening = self._listening
        epoch = self._epoch
        now = time.monotonic()
        hit = self._entries.get(token_hash(token))
        if hit is not None and (hit.expires < now or hit.epoch != epoch):
            hit = None
        if listening:
            generation = None
            if hit is not None:
                if self._due(hit.principal, now):
                    self._stamp(hit.principal.token_id)
                return hit.principal
            stamped = False
        else:
            stamped = hit is not None and self._due(hit.principal, now)
            generation = self._generation(hit.principal.token_id if stamped and hit else None)
            if hit is not None and generation is not None and hit.generation == generation:
                return hit.principal
        principal = load()
        if principal is not None and (listening or generation is not None):
            self.put(token, principal, epoch, generation)
            if not stamped and self._due(principal, now):
                self._stamp(principal.token_id)
        return principal

    def close(self) -> None:
        """Stop listening (the runtime is closing)."""
        self._closed = True
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.stop()
        self._went_deaf()

    # -- the listener's side ---------------------------------------------------------------------

    def _start_listener(self) -> None:
        with self._lock:
            if self._closed or (self._listener is not None and self._listener.is_alive()):
                return
            assert self.client is not None
            self._listener = _Listener(weakref.ref(self), self.client)
            self._listener.start()

    def _subscribed(self) -> None:
        self._epoch += 1  # entries read in GET mode may predate an announcement we did not hear
        self._entries.clear()
        self._listening = True

    def _heard(self, generation: bytes) -> None:
        """A revocation was announced: void every entry, then acknowledge."""
        self._epoch += 1
        self._entries.clear()
        assert self.client is not None
        pipe = self.client.pipeline(transaction=False)
        pipe.rpush(ACK_PREFIX + generation.decode(), os.getpid())
        pipe.expire(ACK_PREFIX + generation.decode(), 60)
        pipe.execute()

    def _went_deaf(self) -> None:
        self._listening = False
        self._epoch += 1
        self._entries.clear()

    def _after_fork(self) -> None:
        """In a forked child: no listener runs there (yet)."""
        self._listener = None
        self._lock = threading.Lock()
        self._went_deaf()

    # -- last use and GET mode -------------------------------------------------------------------

    def _due(self, principal: Principal, now: float) -> bool:
        token_id = principal.token_id
        if token_id is None or now - self._touched.get(token_id, -1e18) < self.touch_every:
            return False
        if len(self._touched) >= self.max_entries:
            self._touched.clear()
        self._touched[token_id] = now
        return True

    def _generation(self, stamp: str | None) -> bytes | None:
        """Redis's auth generation (one round trip, carrying ``stamp``'s last-use write when
        given); None when Redis cannot be asked."""
        assert self.client is not None
        try:
            if stamp is None:
                generation = self.client.get(GENERATION_KEY)
            else:
                pipe = self.client.pipeline(transaction=False)
                pipe.get(GENERATION_KEY)
                pipe.hset(LAST_USED_KEY, stamp, int(time.time()))
                generation = pipe.execute()[0]
            if generation is None:  # first run, or Redis lost it: any value will do, once
                self.client.set(GENERATION_KEY, secrets.token_hex(8), nx=True)
                generation = self.client.get(GENERATION_KEY)
        except (redis.RedisError, OSError):
            self._entries.clear()  # we may miss announcements while Redis is away
            return None
        return generation  # type: ignore[no-any-return]

    def _stamp(self, token_id: str | None) -> None:
        assert self.client is not None and token_id is not None
        try:
            self.client.hset(LAST_USED_KEY, token_id, int(time.time()))
        except (redis.RedisError, OSError):
            pass


class _Listener(threading.Thread):
    """Subscribed to ``CHANNEL`` for one cache: tells it when it is subscribed, what it hears and
    when the subscription is lost; reconnects with a growing pause. Ends when the cache is closed
    or gone (it holds the cache only weakly)."""

    def __init__(self, cache: "weakref.ref[PrincipalCache]", client: "redis.Redis[bytes]") -> None:
        super().__init__(name="citycode-auth-listener", daemon=True)
        self.cache = cache
        self.client = client
        self._stop_event = threading.Event()

    def stop(self) -> None:
        self._stop_event.set()

    def run(self) -> None:
        pause = 0.05
        while not self._stop_event.is_set():
            pubsub = self.client.pubsub()
            try:
                pubsub.subscribe(CHANNEL)
                while not self._stop_event.is_set():
                    message = pubsub.get_message(timeout=0.25)
                    cache = self.cache()
                    if cache is None:
                        return
                    if message is not None and message["type"] == "subscribe":
                        cache._subscribed()
                        pause = 0.05
                    elif message is not None and message["type"] == "message":
                        cache._heard(message["data"])
                    del cache
            except Exception as exc:  # noqa: BLE001 - a listener must never die of a lost connection
                cache = self.cache()
                if cache is None or self._stop_event.is_set():
                    return  # closed under us: its connection went with the client
                cache._went_deaf()
                del cache
                log.warning("token revocations not heard; asking Redis per request meanwhile",
                            extra={"error": type(exc).__name__})
                self._stop_event.wait(pause)
                pause = min(1.0, pause * 2)
            finally:
                try:
                    pubsub.close()
                except Exception:  # noqa: BLE001 - already gone with the client
                    pass


def _forget_at_fork(cache: PrincipalCache) -> None:
    """A forked child (a gunicorn worker) inherits no listener thread: start over there."""
    ref = weakref.ref(cache)

    def reset() -> None:
        alive = ref()
        if alive is not None:
            alive._after_fork()

    os.register_at_fork(after_in_child=reset)


def ensure_admin_token(session: Session, token_file: Path) -> str | None:
    """On first run with no ``CITYCODE_ADMIN_TOKEN``, create an admin token and write it to a 0600 file.

    Returns the path's text when a new token was written, else None.
    """
    exists = session.scalars(select(ApiToken.id).where(
        ApiToken.role == Role.ADMIN.value, ApiToken.revoked_at.is_(None))).first()
    if exists is not None:
        return None
    token = issue_token(session, Role.ADMIN, "admin")
    token_file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(token + "\n")
    os.chmod(token_file, 0o600)
    return str(token_file)

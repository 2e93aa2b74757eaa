"""The ``citycode`` command: serve the API, manage signing keys, migrate the database, check the
audit log."""
from __future__ import annotations

import json
import sys
import time

import click

from app.config import ConfigError, Settings
from app.signing.keyfiles import KeyFileError
from app.signing.keyring import KeyRingCache, KeyStore


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None


def _keystore(settings: Settings) -> KeyStore:
    return KeyStore(settings.resolved_keys_dir, retire_after_seconds=settings.key_retire_seconds)


@click.group()
def main() -> None:
    """CityCode (一码通城): one QR code for the whole city."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--workers", default=0, type=click.IntRange(0, 64), help="default: one per core")
def serve(host: str, port: int, workers: int) -> None:
    """Run the API under gunicorn (threads see only complete requests: slow clients hold no
    thread; see app/serving/options.py); starts an embedded redis-server when REDIS_URL is not set."""
    from gunicorn.app.wsgiapp import run

    from app.serving.options import ServingOptionError, ServingOptions

    _settings()  # fail early, with a clear message, on bad settings
    try:
        ServingOptions.from_env()
    except ServingOptionError as exc:
        raise click.UsageError(str(exc)) from None
    argv = ["citycode", "-c", "python:app.serving.gunicorn_conf", "--bind", f"{host}:{port}"]
    if workers:
        argv += ["--workers", str(workers)]
    sys.argv = argv + ["app:create_app()"]
    run()


@main.group()
def keys() -> None:
    """Signing keys: generate, rotate, list, revoke."""


@keys.command("generate")
@click.option("--algorithm", type=click.Choice(["ES256", "EdDSA"]), default=None,
              help="default: CITYCODE_KEY_ALGORITHM or ES256")
@click.option("--force", is_flag=True, help="retire an existing ring and start a new one")
def keys_generate(algorithm: str | None, force: bool) -> None:
    """Create the current and next keys (private files mode 0600)."""
    settings = _settings()
    store = _keystore(settings)
    if store.exists() and not force:
        raise click.ClickException(f"a key ring already exists in {store.directory}; use --force "
                                   "to replace it or `citycode keys rotate`")
    store.generate(algorithm or settings.key_algorithm, force=force)
    _print_ring(store)


@keys.command("rotate")
@click.option("--algorithm", type=click.Choice(["ES256", "EdDSA"]), default=None)
def keys_rotate(algorithm: str | None) -> None:
    """Next key becomes current; the old current stays published until its codes expire."""
    store = _keystore(_settings())
    try:
        store.rotate(algorithm)
    except KeyFileError as exc:
        raise click.ClickException(str(exc)) from None
    _print_ring(store)


@keys.command("revoke")
@click.argument("kid")
def keys_revoke(kid: str) -> None:
    """Withdraw a retired or next key from the JWKS now (a leaked key); the current key: rotate first.

    A kid may start with "-": write `citycode keys revoke -- KID`.
    """
    store = _keystore(_settings())
    try:
        store.revoke(kid)
    except KeyFileError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"revoked {kid}; readers that cached the JWKS must re-sync")
    _print_ring(store)


@keys.command("list")
@click.option("--json", "as_json", is_flag=True)
def keys_list(as_json: bool) -> None:
    """Show every key in the ring and its state."""
    store = _keystore(_settings())
    if as_json:
        click.echo(json.dumps(store.list(), indent=2))
        return
    _print_ring(store)


def _print_ring(store: KeyStore) -> None:
    now = int(time.time())
    for entry in store.list():
        until = entry.get("publish_until")
        note = f" published for {max(0, until - now)} s more" if until else ""
        click.echo(f"{entry['kid']}  {entry['alg']:<5}  {entry['state']:<7}{note}")


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply every pending migration."""
    from app import db as database

    settings = _settings()
    database.migrate(settings.resolved_database_url)
    click.echo("database is at the newest migration")


@main.group()
def audit() -> None:
    """The audit log: a hash chain of entries, sealed into a Merkle tree with signed heads."""


@audit.command("verify")
def audit_verify() -> None:
    """Recompute the hash chain, every leaf from its rows, the tree from the leaves, and check
    every signed head (signature under the archived head keys, root, consistency with the head
    before it); exit 1 naming each entry, leaf, node or head that is wrong."""
    from app.audit.auditor import audit as check
    from app.db import Database

    database = Database(_settings().resolved_database_url)
    try:
        with database.session() as session:
            report = check(session)
    finally:
        database.dispose()
    if not report.ok:
        for problem in report.problems:
            click.echo(problem)
        click.echo(f"audit log broken ({len(report.problems)} problems)")
        sys.exit(1)
    click.echo(f"audit log ok ({report.entries} entries, {report.leaves} leaves, {report.heads} signed heads, "
               f"{report.unsealed} not yet in a leaf; root {report.root.hex()})")


@main.group()
def records() -> None:
    """Scan records waiting in Redis for the audit log (the writer `citycode serve` runs)."""


@records.command("status")
def records_status() -> None:
    """Print the writer's lag as JSON: records not yet in SQL and the oldest one's age."""
    from app.records.lag import lag
    from app.store.redis import connect

    settings = _settings()
    if not settings.redis_url:
        raise click.UsageError("REDIS_URL is not set (the embedded Redis runs inside `citycode serve`)")
    client = connect(settings.redis_url)
    try:
        behind = lag(client, settings.records_stream)
    finally:
        client.close()
    click.echo(json.dumps({"records": behind.records, "oldest_seconds": round(behind.oldest_seconds, 3),
                           "max_lag_seconds": settings.records_max_lag_seconds}))


@records.command("drain")
def records_drain() -> None:
    """Write every waiting scan record to the audit log now, then exit (for a service run with
    CITYCODE_RECORDS_WRITER=0, or to empty the stream before maintenance)."""
    from app.db import Database
    from app.records.writer import RecordWriter
    from app.store.redis import connect

    settings = _settings()
    if not settings.redis_url:
        raise click.UsageError("REDIS_URL is not set (the embedded Redis runs inside `citycode serve`)")
    client = connect(settings.redis_url, socket_timeout=10, connect_timeout=1)
    database = Database(settings.resolved_database_url)
    try:
        written = RecordWriter(client, database, stream=settings.records_stream,
                               batch=settings.records_batch, keys=KeyRingCache(_keystore(settings))).drain()
    finally:
        database.dispose()
        client.close()
    click.echo(f"{written} records drained")


@main.command()
@click.option("--url", default=None, help="a running service (default: start a private one)")
@click.option("--admin-token", envvar="CITYCODE_ADMIN_TOKEN", default=None, help="with --url")
@click.option("--lang", type=click.Choice(["zh", "en", "both"]), default="both", show_default=True)
def demo(url: str | None, admin_token: str | None, lang: str) -> None:
    """A miniature city morning: riders, offline readers, a hall visit, settlement, a summary."""
    from app import demo as morning
    from app.demo_service import ServiceStartError

    if url and not admin_token:
        raise click.UsageError("--url needs --admin-token (or CITYCODE_ADMIN_TOKEN)")
    try:
        morning.run(url, admin_token, lang, click.echo)  # type: ignore[arg-type]
    except ServiceStartError as exc:
        raise click.ClickException(str(exc)) from None


@main.command()
@click.option("--due-only", is_flag=True,
              help="only taps older than the trip limit (unpaired: the maximum fare)")
def settle(due_only: bool) -> None:
    """Settle offline metro taps: pair entries and exits (online exits included), charge the
    maximum fare for unpaired ones older than the trip limit. Prints JSON. Safe to run any time
    (e.g. every few minutes); uploads also settle what they touch."""
    from app.db import Database
    from app.taps import settle_pending
    from app.taps.settlement import Settlement, Tariff

    from datetime import timedelta

    settings = _settings()
    database = Database(settings.resolved_database_url)
    try:
        report = settle_pending(database, Settlement(Tariff.from_city()), time.time(),
                                due_only=due_only,
                                window=timedelta(seconds=settings.online_use_window_seconds))
    finally:
        database.dispose()
    click.echo(json.dumps(report.to_dict()))

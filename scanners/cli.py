"""``citycode-scanner``: a reader (bus, metro gate, scenic turnstile, hall kiosk) on the console.

``scan`` (the default command) decodes real QR images — a PNG, a folder of them, or a citizen's
live ``/v1/me/code.png`` — and lets a :class:`scanners.reader.Reader` decide each one, printing
the decision, reason, scene result and timings. ``upload``, ``sync`` and ``status`` work on the
reader's data dir; ``fleet`` runs many readers with scripted outages (scanners/fleet.py).
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import click

from scanners import console, decode
from scanners.console import DEFAULT_DATA_DIR

_DATA_DIR = click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
                         default=DEFAULT_DATA_DIR, show_default=True, envvar="CITYCODE_READER_DIR",
                         help="the reader's SQLite (journal, trust, replay cache)")
_URL = click.option("--url", envvar="CITYCODE_URL", default=None,
                    help="the service, e.g. http://127.0.0.1:8000 (needed to enrol)")
_TOKEN = click.option("--token", envvar="CITYCODE_TERMINAL_TOKEN", default=None,
                      help="terminal token; enrols a reader in --data-dir on first use")
_JSON = click.option("--json", "as_json", is_flag=True, help="one JSON object a line")


class _DefaultToScan(click.Group):
    """``citycode-scanner IMAGE …`` means ``citycode-scanner scan IMAGE …``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["scan", *args]
        return super().parse_args(ctx, args)


@click.group(cls=_DefaultToScan, context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """CityCode reader simulator: decode real QR images and decide them like a gate would."""


@main.command()
@click.argument("images", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option("--live", "live_url", default=None, metavar="URL",
              help="fetch the citizen's code image from URL (service base or …/v1/me/code.png)")
@click.option("--app-token", "app_tokens", multiple=True, envvar="CITYCODE_APP_TOKEN",
              help="the citizen's app token for --live (repeat for several citizens)")
@click.option("--count", default=1, show_default=True, type=click.IntRange(1),
              help="--live: rounds of fetching every citizen's code")
@_URL
@_TOKEN
@_DATA_DIR
@click.option("--kind", type=click.Choice(["bus", "metro", "scenic", "hall"]), default=None,
              help="what this reader must be (checked against the terminal's registration)")
@click.option("--direction", type=click.Choice(["entry", "exit"]), default=None, help="metro gates")
@click.option("--service", default=None, help="hall kiosks: take a queue number for this service")
@click.option("--location", default=None, metavar="LAT,LON", help="where a moving reader (bus) is")
@click.option("--offline", is_flag=True, help="decide locally, do not ask the service")
@_JSON
def scan(images: tuple[Path, ...], live_url: str | None, app_tokens: tuple[str, ...], count: int,
         url: str | None, token: str | None, data_dir: Path, kind: str | None, direction: str | None,
         service: str | None, location: str | None, offline: bool, as_json: bool) -> None:
    """Decide QR images: PNG files, folders of them, or --live codes of citizens."""
    if not images and not live_url:
        raise click.UsageError("give PNG files or folders, or --live URL with --app-token")
    if live_url and not app_tokens:
        raise click.UsageError("--live needs --app-token")
    where = console.parse_location(location)
    reader = console.open_reader(data_dir, url, token)
    failures = 0
    try:
        console.check_kind(reader, kind, direction, service)
        sources = console.plan_sources(images, live_url, app_tokens, count)
        decode.warm_up()
        with console.progress(len(sources), "scan", enabled=not as_json) as bar:
            for source in sources:
                line, ok = console.scan_one(reader, source, direction=direction, offline=offline,
                                            service=service, location=where)
                failures += not ok
                bar.write(json.dumps(line, ensure_ascii=False) if as_json else console.text_line(line))
                bar.update()
    finally:
        reader.close()
    sys.exit(1 if failures else 0)


@main.command()
@_DATA_DIR
@_URL
@click.option("--batch-size", default=500, show_default=True, type=click.IntRange(1, 1000))
@_JSON
def upload(data_dir: Path, url: str | None, batch_size: int, as_json: bool) -> None:
    """Send the journal's pending decisions to POST /v1/taps."""
    reader = console.open_reader(data_dir, url, None)
    try:
        started = time.perf_counter()
        result = console.as_dict(reader.upload(batch_size=batch_size))
        result.update(pending=reader.pending(), elapsed_ms=round((time.perf_counter() - started) * 1000, 1))
    finally:
        reader.close()
    _emit(result, as_json, "upload")
    sys.exit(0 if result.get("ok", True) else 1)


@main.command()
@_DATA_DIR
@_URL
@_JSON
def sync(data_dir: Path, url: str | None, as_json: bool) -> None:
    """Fetch the JWKS and the revocation feed's news."""
    reader = console.open_reader(data_dir, url, None)
    try:
        result = console.as_dict(reader.sync())
    finally:
        reader.close()
    _emit(result, as_json, "sync")
    sys.exit(0 if result.get("ok", True) else 1)


@main.command()
@_DATA_DIR
@_JSON
def status(data_dir: Path, as_json: bool) -> None:
    """What the reader is, how fresh its trust is, and what waits for upload (no network)."""
    reader = console.open_reader(data_dir, None, None)
    try:
        result = dict(reader.status())
        result.setdefault("pending", reader.pending())
    finally:
        reader.close()
    _emit(result, as_json, "status")


def _emit(result: dict[str, Any], as_json: bool, title: str) -> None:
    if as_json:
        click.echo(json.dumps(result, ensure_ascii=False, default=str))
        return
    click.echo(title)
    for key, value in result.items():
        click.echo(f"  {key:<18} {json.dumps(value, ensure_ascii=False, default=str)}")


@main.command()
@click.option("--url", envvar="CITYCODE_URL", required=True, help="the service")
@click.option("--admin-token", envvar="CITYCODE_ADMIN_TOKEN", default=None,
              help="registers the fleet's terminals and riders, and reads /v1/admin/anomalies")
@click.option("--setup", "setup_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help='JSON {"terminals": [{"token": …}], "app_tokens": […]} instead of registering')
@click.option("--buses", default=2, show_default=True, type=click.IntRange(0))
@click.option("--gates", default=2, show_default=True, type=click.IntRange(0), help="metro gates, one a station")
@click.option("--turnstiles", default=1, show_default=True, type=click.IntRange(0), help="Laoshan turnstiles")
@click.option("--citizens", default=20, show_default=True, type=click.IntRange(1))
@click.option("--scans", default=50, show_default=True, type=click.IntRange(1), help="per reader")
@click.option("--codes", "use_codes", is_flag=True, help="code strings (POST /v1/me/code), no images: throughput")
@click.option("--outage", "outages", multiple=True, metavar="SPEC", help='e.g. "reader:3-5 at 10s for 20s"')
@click.option("--restart", "restarts", multiple=True, metavar="SPEC", help='e.g. "reader:2 at 15s"')
@click.option("--script", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="JSON outage/restart script (see scanners/fleet_plan.py)")
@click.option("--upload-every", default=25, show_default=True, type=click.IntRange(0),
              help="upload after this many scans while online (0: only at the end)")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="where the readers' SQLite files go (default: a temporary folder, removed)")
@click.option("--seed", default=7, show_default=True, type=int)
@_JSON
def fleet(url: str, admin_token: str | None, setup_file: Path | None, buses: int, gates: int,
          turnstiles: int, citizens: int, scans: int, use_codes: bool, outages: tuple[str, ...],
          restarts: tuple[str, ...], script: Path | None, upload_every: int, data_dir: Path | None,
          seed: int, as_json: bool) -> None:
    """Many readers in threads against one service, with scripted outages and restarts."""
    import tempfile

    from scanners import fleet as fleet_mod
    from scanners.fleet_plan import PlanError, build
    from scanners.provision import ApiError, CityApi, provision_fleet

    try:
        plan = build(outages, restarts, script)
    except PlanError as exc:
        raise click.UsageError(str(exc)) from None
    api = CityApi(url, admin_token)
    if setup_file is not None:
        terminals, riders = console.load_setup(setup_file)
    elif admin_token:
        try:
            terminals, riders = provision_fleet(api, buses=buses, gates=gates, turnstiles=turnstiles,
                                                citizens=citizens)
        except (ApiError, ValueError) as exc:
            raise click.ClickException(f"setting up the fleet: {exc}") from None
    else:
        raise click.UsageError("give --admin-token (to register a fleet) or --setup FILE")
    if not terminals:
        raise click.UsageError("a fleet needs at least one reader")
    if unknown := sorted(n for n in plan.readers() if n > len(terminals)):
        raise click.UsageError(f"the plan names reader(s) {unknown}, but the fleet has {len(terminals)}")
    with tempfile.TemporaryDirectory(prefix="cc-fleet-") as scratch:
        config = fleet_mod.FleetConfig(url, terminals, riders, data_dir or Path(scratch), scans, plan,
                                       use_codes, upload_every, seed)
        with console.progress(len(terminals) * scans, "fleet", enabled=not as_json) as bar:
            summary = fleet_mod.run_fleet(config, api if admin_token else None, progress=bar.update)
    body = summary.to_dict()
    if as_json:
        click.echo(json.dumps(body, ensure_ascii=False, default=str))
    else:
        click.echo(console.fleet_text(body))
    sys.exit(1 if body["errors"] or body["pending"] else 0)


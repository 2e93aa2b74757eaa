"""The parts of ``citycode-scanner scan``: opening (or enrolling) the reader, turning images into
decisions with timings, one line of text or JSON per image, and progress bars on long runs.

Decisions come only from the Reader (which verifies with ``app.codes``); this module times and
prints them.
"""
from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import requests

from scanners import decode

DEFAULT_DATA_DIR = Path("var/reader")
READER_FILE = "reader.sqlite3"
PROGRESS_MIN_ITEMS = 10  # a bar for a run of a few images is noise


@dataclass(frozen=True)
class Source:
    """One image to decide: a file, or a citizen's live code image."""

    label: str
    path: Path | None = None
    live_url: str | None = None
    app_token: str | None = None


def open_reader(data_dir: Path, url: str | None, token: str | None) -> Any:
    """The reader enrolled in ``data_dir`` (talking to ``url`` when given), enrolling it first
    when there is none and a terminal token is given."""
    from scanners.reader import Reader, ReaderError

    try:
        if (data_dir / READER_FILE).exists():
            return Reader.open(data_dir, **({"base_url": url.rstrip("/")} if url else {}))
        if not token or not url:
            raise click.UsageError(f"no reader enrolled in {data_dir}: give --url and --token to enrol one")
        return Reader.enrol(data_dir, url, token)
    except ReaderError as exc:
        raise click.ClickException(str(exc)) from None


def reader_kind(reader: Any) -> str:
    """The terminal kind the reader learned at enrolment (GET /v1/terminals/me)."""
    return str(reader.kind)


def check_kind(reader: Any, kind: str | None, direction: str | None, service: str | None) -> None:
    """Refuse a --kind that is not the terminal's registration, a metro gate without a direction,
    and options that belong to another kind."""
    actual = reader_kind(reader)
    if kind and kind != actual:
        raise click.UsageError(f"--kind {kind}, but this terminal is registered as {actual}")
    if direction and actual != "metro":
        raise click.UsageError("--direction is for metro gates only")
    if actual == "metro" and not direction:
        raise click.UsageError("a metro gate needs --direction entry or exit")
    if service and actual != "hall":
        raise click.UsageError("--service is for hall kiosks only")


def plan_sources(images: tuple[Path, ...], live_url: str | None, app_tokens: tuple[str, ...],
                 count: int) -> list[Source]:
    """Files first (folders expanded, sorted), then ``count`` rounds over the citizens' live codes."""
    sources = [Source(str(path), path=path) for item in images for path in decode.image_files(item)]
    if live_url:
        base = live_url.removesuffix("/v1/me/code.png").rstrip("/")
        sources += [Source(f"live:{n + 1}.{i + 1}", live_url=base, app_token=token)
                    for n in range(count) for i, token in enumerate(app_tokens)]
    return sources


def scan_one(reader: Any, source: Source, *, direction: str | None = None, offline: bool = False,
             service: str | None = None, location: dict[str, float] | None = None,
             session: requests.Session | None = None) -> tuple[dict[str, Any], bool]:
    """Decode ``source`` and let the reader decide it: the output line, and False on a decode error."""
    timings: dict[str, float] = {}
    try:
        if source.path is not None:
            image = decode.decode_file(source.path)
        else:
            started = time.perf_counter()
            content = decode.fetch_code_png(source.live_url or "", source.app_token or "", session)
            timings["fetch_ms"] = _ms(started)
            image = decode.decode_png(content, source.label)
    except (decode.DecodeError, decode.FetchError) as exc:
        return {"source": source.label, "error": str(exc)}, False
    started = time.perf_counter()
    decided = reader.scan(image.text, direction=direction, offline=offline, service=service,
                          location=location)
    verify_ms = _ms(started)
    timings.update(decode_ms=round(image.decode_ms, 2), verify_ms=verify_ms,
                   total_ms=round(image.decode_ms + verify_ms, 2))
    return decision_line(source.label, decided, timings), True


def decision_line(label: str, decided: Any, timings: dict[str, float]) -> dict[str, Any]:
    """The JSON shape of one decision: what the gate showed, how it decided, how long it took."""
    body = decided.to_dict()
    line = {"source": label, "decision": body["decision"], "reason": body["reason"],
            "message": body["message"], "result": body["data"], "mode": body["mode"], "seq": body["seq"],
            "stale": body["stale"], "timings": timings, "reader_timings": body["timings"]}
    if body.get("fallback"):
        line["fallback"] = body["fallback"]
    return line


def describe_result(result: dict[str, Any]) -> str:
    """The scene result in a few words: fare, trip, admission or queue number."""
    parts = []
    if fare := result.get("fare"):
        route = f" {fare['from']}→{fare['to']}" if fare.get("from") else ""
        parts.append(f"fare {fare.get('amount_cents', 0) / 100:.2f} {fare.get('display', '')}{route}".rstrip())
    if (trip := result.get("trip")) and "exited_at" in trip:
        parts.append(f"exit at {trip.get('station')}, fare settled later")
    elif trip:
        parts.append(f"entry at {trip.get('station')}")
    if admission := result.get("admission"):
        left = admission.get("remaining")
        parts.append(f"admitted {admission.get('spot')}" + (f" ({left} left)" if left is not None else ""))
    if ticket := result.get("ticket"):
        parts.append(f"ticket {ticket} ({result.get('ahead', 0)} ahead)")
    return "; ".join(parts)


def text_line(line: dict[str, Any]) -> str:
    """One human-readable line for a decision (or a decode error)."""
    if "error" in line:
        return f"ERROR   {line['error']}"
    t = line["timings"]
    fetch = f"fetch {t['fetch_ms']:.1f} ms  " if "fetch_ms" in t else ""
    flags = " stale" if line.get("stale") else ""
    return (f"{str(line['decision']).upper():<7} {line['reason']:<16} {describe_result(line['result']):<42} "
            f"{fetch}decode {t['decode_ms']:.1f} ms  verify {t['verify_ms']:.1f} ms  total {t['total_ms']:.1f} ms  "
            f"{line.get('mode') or '-'}{flags}  #{line.get('seq')}  {line['source']}")


class _NoBar:
    def write(self, text: str) -> None:
        click.echo(text)

    def update(self, n: int = 1) -> None:
        pass


@contextlib.contextmanager
def progress(total: int, desc: str, *, enabled: bool = True) -> Iterator[Any]:
    """A tqdm bar on stderr for long runs on a terminal; lines still go to stdout."""
    if not enabled or total < PROGRESS_MIN_ITEMS or not sys.stderr.isatty():
        yield _NoBar()
        return
    from tqdm import tqdm

    with tqdm(total=total, desc=desc, unit="scan", file=sys.stderr, leave=False) as bar:
        yield bar


def as_dict(result: Any) -> dict[str, Any]:
    """A library result (dataclass or object with ``to_dict``) as a plain dict."""
    if hasattr(result, "to_dict"):
        return dict(result.to_dict())
    if hasattr(result, "__dataclass_fields__"):
        import dataclasses

        return dataclasses.asdict(result)
    return dict(result) if isinstance(result, dict) else {"result": result}


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000.0, 2)


def load_setup(path: Path) -> tuple[list[Any], list[Any]]:
    """Terminals and riders prepared elsewhere: ``{"terminals": [{"token", "kind"?, "site"?}],
    "app_tokens": [...]}`` (the kind is learned at enrolment when not given)."""
    import json

    from scanners.provision import Citizen, Terminal

    try:
        body = json.loads(path.read_text())
        terminals = [Terminal(t.get("terminal_id", f"t{n}"), t["token"], t.get("kind", ""), dict(t.get("site", {})))
                     for n, t in enumerate(body["terminals"], start=1)]
        riders = [Citizen(f"c{n}", token, f"rider-{n}") for n, token in enumerate(body["app_tokens"], start=1)]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise click.UsageError(f"{path}: not a fleet setup ({exc})") from None
    if not riders:
        raise click.UsageError(f"{path}: no app_tokens")
    return terminals, riders


def fleet_text(body: dict[str, Any]) -> str:
    """The fleet summary as a few lines of text."""
    def counts(mapping: dict[str, int]) -> str:
        return ", ".join(f"{key} {value}" for key, value in mapping.items()) or "none"

    rate = body["scans"] / body["elapsed_s"] if body["elapsed_s"] else 0.0
    latency = body["image_to_decision_ms"]
    lines = [
        f"fleet: {body['readers']} readers, {body['scans']} scans in {body['elapsed_s']:.1f} s ({rate:.1f}/s); "
        f"image→decision p50 {latency['p50']} ms, p99 {latency['p99']} ms",
        f"decisions by reason: {counts(body['by_reason'])}",
        f"by mode: {counts(body['by_mode'])}; by kind: {counts(body['by_kind'])}; restarts: {body['restarts']}",
        f"uploaded: stored {body['uploaded']['stored']}, duplicates {body['uploaded']['duplicates']}; "
        f"pending {body['pending']}",
        f"anomalies: {len(body['anomalies'])} ({counts(body['anomalies_by_kind'])})",
    ]
    lines += [f"error: {error}" for error in body["errors"][:20]]
    lines += [f"upload error, reader {n}: {error}" for n, error in body["upload_errors"].items()]
    return "\n".join(lines)


def parse_location(text: str | None) -> dict[str, float] | None:
    """``"36.06,120.38"`` → ``{"lat": 36.06, "lon": 120.38}``."""
    if text is None:
        return None
    try:
        lat, lon = (float(part) for part in text.split(","))
    except ValueError:
        raise click.UsageError(f"--location {text!r}: write LAT,LON, e.g. 36.0671,120.3826") from None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise click.UsageError(f"--location {text!r}: latitude -90..90, longitude -180..180")
    return {"lat": lat, "lon": lon}

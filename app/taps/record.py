"""One uploaded tap record as the domain sees it, and the time rules of the tap contract.

``scanned_at`` arrives as RFC 3339 with an offset or as epoch seconds; both become an aware UTC
``datetime`` with microsecond precision, so the same instant sent either way is the same record
(its ``digest`` is equal) and a resend in the other form is a plain duplicate.
"""
from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, fields
from functools import cached_property
from datetime import datetime, timedelta, timezone
from typing import Any, Mapping

# RFC 3339 date-time: date, "T" (or a space, RFC 3339 §5.6 note), time, fraction, offset required.
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$")
EARLIEST = datetime(2000, 1, 1, tzinfo=timezone.utc)
LATEST = datetime(2100, 1, 1, tzinfo=timezone.utc)


class BadTime(ValueError):
    """A ``scanned_at`` the contract does not allow."""


def parse_scanned_at(value: Any) -> datetime:
    """RFC 3339 with an offset, or epoch seconds (int or float), as aware UTC in 2000..2100."""
    if isinstance(value, bool):
        raise BadTime("must be an RFC 3339 time with an offset, or epoch seconds")
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            raise BadTime("epoch seconds must be a finite number")
        if not EARLIEST.timestamp() <= value < LATEST.timestamp():
            raise BadTime("must be between 2000-01-01 and 2100-01-01")
        moment = EARLIEST + timedelta(microseconds=round((value - EARLIEST.timestamp()) * 1e6))
    elif isinstance(value, str):
        match = _RFC3339.match(value)
        if match is None:
            raise BadTime("must be an RFC 3339 time with an offset (e.g. 2026-12-01T08:30:00+08:00)")
        fraction = match.group(1) or ""
        text = value.replace(fraction, fraction[:7], 1) if len(fraction) > 7 else value
        try:
            moment = datetime.fromisoformat(text.replace("z", "Z").replace("t", "T"))
        except ValueError:
            raise BadTime("is not a real date and time") from None
        moment = moment.astimezone(timezone.utc)
        if not EARLIEST <= moment < LATEST:
            raise BadTime("must be between 2000-01-01 and 2100-01-01")
    else:
        raise BadTime("must be an RFC 3339 time with an offset, or epoch seconds")
    return moment


def utc(moment: datetime) -> datetime:
    """Aware UTC; SQLite hands back naive datetimes, which were stored as UTC."""
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def rfc3339(moment: datetime) -> str:
    return utc(moment).isoformat().replace("+00:00", "Z")


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICROSECOND = timedelta(microseconds=1)


def micros(moment: datetime) -> int:
    """Epoch microseconds of an aware time (exact: times are kept to the microsecond)."""
    return (moment - _EPOCH) // _MICROSECOND


def from_micros(value: int) -> datetime:
    return _EPOCH + timedelta(microseconds=value)


@dataclass(frozen=True)
class TapRecord:
    """A validated record (see the contract in API.md / the OpenAPI document of POST /v1/taps)."""

    seq: int
    jti: str | None
    sub: str | None
    iss: str
    scanned_at: datetime
    decision: str
    reason: str
    direction: str | None = None
    mode: str = "offline"
    ent: tuple[str, ...] | None = None
    trust_version: int | None = None
    trust_age_s: float | None = None
    clock_offset_s: float | None = None
    location: tuple[float, float] | None = None
    stale: bool | None = None
    request_id: str | None = None
    result: Mapping[str, Any] | None = None

    @cached_property
    def server_at(self) -> datetime:
        """The scan time on the server's clock: the reader's clock less its known offset."""
        return self.scanned_at - timedelta(seconds=self.clock_offset_s or 0.0)

    @property
    def accepted(self) -> bool:
        return self.decision == "accept"

    @cached_property
    def digest(self) -> str:
        """The record's content digest, format 2 (``DIGEST_VERSION``): ``"2:"`` and 62 hex digits
        of SHA-256 over the canonical JSON of every field in declaration order (``scanned_at`` as
        epoch microseconds; keys of ``result`` sorted). Equal for equal content, whatever its
        form. Rows stored before format 2 hold the format-1 digest (64 hex digits, no prefix):
        compare them with ``digest_v1`` (``same_content``)."""
        values = [getattr(self, name) for name in _FIELD_NAMES]
        values[_SCANNED_AT] = micros(self.scanned_at)
        return "2:" + hashlib.sha256(_CANONICAL.encode(values).encode("utf-8")).hexdigest()[:62]

    @property
    def digest_v1(self) -> str:
        """Format 1: SHA-256 over the canonical JSON object of the fields (``scanned_at`` RFC
        3339). Only to compare with rows stored before format 2; never stored any more."""
        values = {name: getattr(self, name) for name in _FIELD_NAMES}
        values["scanned_at"] = rfc3339(self.scanned_at)
        return hashlib.sha256(_CANONICAL.encode(values).encode("utf-8")).hexdigest()

    def same_content(self, stored_digest: str) -> bool:
        """Whether a stored digest (either format) is this record's."""
        if stored_digest.startswith("2:"):
            return stored_digest == self.digest
        return stored_digest == self.digest_v1

    @cached_property
    def result_json(self) -> str:
        """``result`` as ``json.dumps`` writes it (``null`` when absent): what the size limit
        counts and what the ``result`` column stores, made once."""
        return json.dumps(self.result if self.result is None or type(self.result) is dict
                          else dict(self.result))

    @classmethod
    def of(cls, values: Any, **known: Any) -> "TapRecord":
        """From the field values in declaration order, taken as they are (already checked), and
        any derived values already known (``server_at``, ``digest``, ``result_json``): about
        five times cheaper than the frozen dataclass's ``__init__`` on the upload hot path."""
        record = object.__new__(cls)
        state = record.__dict__
        state.update(zip(_FIELD_NAMES, values))
        if known:
            state.update(known)
        return record

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> "TapRecord":
        """From one schema-validated JSON record."""
        location = body.get("location")
        ent = body.get("ent")
        return cls(
            seq=body["seq"], jti=body["jti"], sub=body["sub"], iss=body.get("iss") or "cc",
            scanned_at=body["scanned_at"], decision=body["decision"], reason=body["reason"],
            direction=body.get("direction"), mode=body.get("mode") or "offline",
            ent=tuple(ent) if ent is not None else None, trust_version=body.get("trust_version"),
            trust_age_s=body.get("trust_age_s"), clock_offset_s=body.get("clock_offset_s"),
            location=(location["lat"], location["lon"]) if location else None,
            stale=body.get("stale"), request_id=body.get("request_id"), result=body.get("result"))


_FIELD_NAMES = tuple(f.name for f in fields(TapRecord))
_SCANNED_AT = _FIELD_NAMES.index("scanned_at")
DIGEST_VERSION = 2
# json.dumps(values, sort_keys=True, separators=(",", ":"), ensure_ascii=False), made once
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)

"""Scan entries in the audit log: one ``scan`` entry per decided scan, accepts and denies.

Scans are no longer written here one by one: the script that decides a scan records it in the
scan-record stream, and the record writer appends them in batches (``app.records.writer``). The
entry names the terminal, its site (``where``), the decision and reason, the pseudonym when the
code was authentic, and what the scene added (fare, trip, admission, ticket). A decision's data is
what a terminal is shown, so it holds no personal data by construction.
"""
from __future__ import annotations

from typing import Any, Mapping


def where(kind: str, site: Mapping[str, Any]) -> dict[str, Any]:
    """The ``site`` column: the terminal's kind and its site fields."""
    return {**{str(k): v for k, v in site.items()}, "kind": kind}

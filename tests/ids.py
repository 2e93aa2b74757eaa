"""Valid-looking resident ID numbers for tests (GB 11643 check character computed)."""
from __future__ import annotations

import itertools

from app.registry.resident_id import check_char

_sequence = itertools.count(1)


def resident_id(region: str = "370202", born: str = "19900307", seq: int | None = None) -> str:
    first17 = f"{region}{born}{(next(_sequence) if seq is None else seq) % 1000:03d}"
    return first17 + check_char(first17)

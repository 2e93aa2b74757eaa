"""Every test here that has an app (SQLite ``app`` or PostgreSQL ``pg_app``) gets a running
record writer for its tap uploads (``tests.tap_writer``), unless its module says
``TAP_WRITER = False``."""
from __future__ import annotations

from typing import Iterator

import pytest

from tests.tap_writer import running_writer


@pytest.fixture(autouse=True)
def tap_writer(request: pytest.FixtureRequest) -> Iterator[None]:
    if not getattr(request.module, "TAP_WRITER", True):  # the module runs its writer itself
        yield
        return
    for name in ("app", "pg_app"):
        if name in request.fixturenames:
            with running_writer(request.getfixturevalue(name)):
                yield
            return
    yield

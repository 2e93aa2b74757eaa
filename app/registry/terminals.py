"""Looking up a registered terminal's kind and site (immutable once registered, so cached)."""
from __future__ import annotations

import threading
from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping

from app.db import Database
from app.db.models import Terminal
from app.errors import NotFound


@dataclass(frozen=True)
class TerminalInfo:
    id: str
    kind: str
    site: Mapping[str, str]


class TerminalDirectory:
    """Per-process cache of terminal kind and site: one database read per terminal, ever."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._cache: dict[str, TerminalInfo] = {}
        self._lock = threading.Lock()

    def get(self, terminal_id: str) -> TerminalInfo:
        info = self._cache.get(terminal_id)
        if info is not None:
            return info
        with self.db.session() as session:
            row = session.get(Terminal, terminal_id)
            if row is None:
                raise NotFound("No such terminal.")
            info = TerminalInfo(row.id, row.kind, MappingProxyType(dict(row.site)))
        with self._lock:
            if len(self._cache) > 100_000:
                self._cache.clear()
            self._cache[terminal_id] = info
        return info

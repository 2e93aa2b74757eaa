"""A drained record's scene data, derived exactly as the worker derived its answer: from the
data known before the script (``acc``) and, where the script's outcome completes it, the same
pure functions the scenes call (scenic ``admission``, metro ``exit_fare``, hall ``ticket_data``).
"""
from __future__ import annotations

from typing import Any, Mapping

from app.records.stream import ScanRecord


class Completions:
    """Scene data per record. Built once per writer: the metro network and fares load here."""

    def __init__(self) -> None:
        from app.hall import ticket_data
        from app.scenes.metro import city_fares
        from app.scenes.scenic import admission

        self.metro = city_fares()
        self._fares: dict[tuple[str, str, tuple[str, ...]], dict[str, Any]] = {}  # pure: cached
        self._admission, self._ticket_data = admission, ticket_data  # imported once, not per record

    def data(self, record: ScanRecord) -> dict[str, Any]:
        """What the accept answered besides decision and reason; {} for a deny."""
        if not record.accepted:
            return {}
        data: dict[str, Any] = dict(record.rec.get("acc") or {})
        inputs: Mapping[str, Any] = record.rec.get("c") or {}
        out = record.outputs
        if "remaining" in out:  # scenic admission
            data.update(self._admission(str(inputs["spot"]), out["remaining"]))
        elif "from" in out:  # metro exit: the fare of the trip the script closed
            key = (out["from"], str(inputs["to"]), tuple(inputs.get("ent") or ()))
            fare = self._fares.get(key)
            if fare is None:
                if len(self._fares) > 100_000:
                    self._fares.clear()
                fare = self._fares[key] = self.metro.exit_fare(*key)
            data["fare"] = dict(fare)
        elif "ticket" in out:  # hall kiosk
            data.update(self._ticket_data(str(inputs["hall"]), str(inputs["service"]), out["ticket"],
                                          out["ahead"], out["issued_at"], out["existing"] == "1"))
        return data

"""Service halls (取号): the kiosk scan that takes a queue number, and the counters' calls.

``HallDesk`` is what the HTTP views call. Its rules:

- Only a ``hall`` terminal of *that* hall may take numbers or call (else ``PermissionDenied``,
  403); an unknown hall is ``NotFound`` (404), an unknown service ``InvalidInput`` (422). These
  are request errors, checked before the code is looked at, so they spend no code.
- A kiosk scan is a scan: bad, expired or replayed codes are a normal ``deny`` decision, and
  every scan, accept or deny, is recorded in the scan-record stream by the queue's script (a deny
  decided before it by one XADD), for the audit log (``app.records``). An accept carries
  ``hall``, ``service``, ``ticket``, ``ahead``, ``issued_at`` and ``existing`` as decision data.
- One waiting ticket per citizen, hall, service and day: scanning again while still waiting hands
  back the same ticket (``existing: true``, ``ahead`` as it is now) and still spends the new code.
  Once called or skipped, a new scan takes a new number.
- Halls fail closed: if Redis cannot answer, the scan is denied ``degraded`` and no number is
  given. Counter actions and the board answer 503 (``Unavailable``) instead — they are not scans.
- Counter actions (call, skip, recall) name a counter the hall's configuration has (else
  ``InvalidInput``, 422: no other text reaches the public board) and come from that counter's own
  terminal: a hall terminal without a counter is a kiosk and may not act for any counter
  (``PermissionDenied``, 403). A counter calls only the services of its plan (403 otherwise).
- A kiosk's ``request_id`` (``ticket``): a retry of the same request gets the first answer back —
  the same ticket, ``ahead`` as it was — and takes nothing a second time
  (``app.verification.retries``).
"""
from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Callable, TypeVar

from app.city import CITY_TZ
from app.codes.decision import Decision
from app.codes.errors import CodeError, Degraded
from app.errors import NotFound, PermissionDenied, Unavailable
from app.hall.config import Hall, HallDirectory, Service, directory
from app.hall.queue import Board, Call, HallQueue
from app.records.stream import draft
from app.scenes.base import ScanContext
from app.verification.retries import Attempt, fingerprint

if TYPE_CHECKING:
    from app.registry.terminals import TerminalInfo
    from app.scenes.service import ScanService
    from app.verification.online import OnlineVerifier

__all__ = ["HallDesk", "directory", "ticket_data"]

T = TypeVar("T")


class HallDesk:
    """Kiosk scans and counter actions for every hall: ``scans`` decides and records a kiosk
    scan (its clock is the halls' clock), ``verifier`` checks the code, ``queue`` keeps tickets."""

    def __init__(self, scans: "ScanService", verifier: "OnlineVerifier", queue: HallQueue,
                 halls: HallDirectory | None = None) -> None:
        self.scans = scans
        self.verifier = verifier
        self.halls = directory() if halls is None else halls
        self.queue = queue

    def take_number(self, terminal: "TerminalInfo", hall_id: str, service_id: str, code: str) -> Decision:
        """A kiosk scan: check the code, then claim it and take (or hand back) a number."""
        hall = self._hall_for(terminal, hall_id)
        service = hall.service(service_id)
        scans = self.scans
        ctx = scans.context(terminal.id, terminal.kind, terminal.site)
        return scans.fresh(ctx, code, self.verifier.check(code),
                           lambda checked: self._take(hall, service, ctx, checked))

    def ticket(self, terminal: "TerminalInfo", hall_id: str, service_id: str, code: str,
               request_id: str | None = None) -> dict[str, Any]:
        """``take_number``'s answer body; with ``request_id`` a retry gets the first body back
        (``RequestIdReused`` for another request under the same id)."""
        if request_id is None:
            return self.take_number(terminal, hall_id, service_id, code).to_dict()
        hall = self._hall_for(terminal, hall_id)
        service = hall.service(service_id)
        scans = self.scans
        ctx = scans.context(terminal.id, terminal.kind, terminal.site)
        checked = self.verifier.check(code)
        attempt = Attempt(terminal.id, request_id, fingerprint("ticket", code, hall.hall, service.service))
        return scans.once(ctx, checked, attempt, lambda: scans.fresh(
            ctx, code, checked, lambda fresh: self._take(hall, service, ctx, fresh)))

    def _take(self, hall: Hall, service: Service, ctx: ScanContext, decision: Decision) -> Decision:
        """Claim an accepted check's code and take a number, recording the scan in the same
        script (a deny decided before it with one XADD). Raises ``TrustMoved``."""
        if not decision.accepted or decision.claims is None:
            return self.queue.records.deny(ctx, decision)
        rec = draft(ctx, decision.claims, complete={"hall": hall.hall, "service": service.service})
        try:
            ticket = self.queue.take(hall, service, decision.claims, ctx.now, rec)
        except CodeError as error:  # Replayed, or Degraded when Redis cannot answer
            return Decision.from_error(error, decision.claims)
        return decision.with_data(**ticket_data(hall.hall, service.service, ticket.ticket, ticket.ahead,
                                                ticket.issued_at, ticket.existing))

    def call(self, terminal: "TerminalInfo", hall_id: str, counter: str, service_id: str | None) -> Call:
        """Call the next ticket to ``counter``: for ``service_id`` if given, else the oldest
        waiting across the services the counter serves. ``NotFound`` when nobody waits."""
        hall = self._hall_for(terminal, hall_id, counter)
        services = hall.callable_by(counter, service_id)
        called = self._redis(lambda: self.queue.call(hall, counter, services, self._now()))
        if called is None:
            raise NotFound("Nobody is waiting.")
        return called

    def skip(self, terminal: "TerminalInfo", hall_id: str, counter: str) -> Call:
        """Mark the counter's current call a no-show and clear it."""
        hall = self._hall_for(terminal, hall_id, counter)
        ticket = self._redis(lambda: self.queue.skip(hall, counter, self._now()))
        if ticket is None:
            raise NotFound("This counter is not calling anyone.")
        return Call(ticket, counter, hall.service_of(ticket))

    def recall(self, terminal: "TerminalInfo", hall_id: str, counter: str) -> Call:
        """The counter's current call, to announce again."""
        hall = self._hall_for(terminal, hall_id, counter)
        ticket = self._redis(lambda: self.queue.current(hall, counter, self._now()))
        if ticket is None:
            raise NotFound("This counter is not calling anyone.")
        return Call(ticket, counter, hall.service_of(ticket))

    def board(self, hall_id: str) -> Board:
        hall = self.halls.get(hall_id)
        return self._redis(lambda: self.queue.board(hall, self._now()))

    # -- helpers -------------------------------------------------------------------------------
    def _hall_for(self, terminal: "TerminalInfo", hall_id: str, counter: str | None = None) -> Hall:
        if terminal.kind != "hall":
            raise PermissionDenied("Only hall terminals may do this.")
        hall = self.halls.get(hall_id)
        if terminal.site.get("hall") != hall.hall:
            raise PermissionDenied("This terminal belongs to another hall.")
        if counter is not None:
            own = terminal.site.get("counter")
            if not own:
                raise PermissionDenied("A kiosk may not act for a counter: only the counter's terminal may.")
            hall.services_for(counter)  # InvalidInput (422) for a counter the hall does not have
            if own != counter:
                raise PermissionDenied("A counter terminal acts only for its own counter.")
        return hall

    def _now(self) -> float:
        return self.scans.clock()

    @staticmethod
    def _redis(action: Callable[[], T]) -> T:
        """Counter actions and the board are not scans: a Redis failure is a 503 problem."""
        try:
            return action()
        except Degraded:
            raise Unavailable("Hall queues are unavailable right now.") from None


def ticket_data(hall: str, service: str, ticket: str, ahead: int | str | bytes,
                issued_at: float | str | bytes, existing: bool) -> dict[str, Any]:
    """A kiosk accept's data; the record writer derives it alike from the script's outputs."""
    issued = datetime.fromtimestamp(float(issued_at), CITY_TZ).isoformat(timespec="seconds")
    return {"hall": hall, "service": service, "ticket": ticket, "ahead": int(ahead),
            "issued_at": issued, "existing": existing}

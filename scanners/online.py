"""The reader's HTTP side: the few service calls a reader makes, on one keep-alive session, and
``Uplink``, which asks the server for scan decisions and keeps the online/offline state.

Every call returns parsed JSON or raises ``ServiceError``; ``ServiceError.transient`` says whether
the failure is the network's or the server's momentary trouble (connection error, timeout, 5xx,
429: worth retrying, or deciding offline) rather than a refusal (other 4xx: retrying the same
request gives the same answer).
"""
from __future__ import annotations

import time
import uuid
from typing import Any, Callable, Mapping

import requests

from app.codes.messages import REASONS

USER_AGENT = "citycode-reader/1"


class ServiceError(Exception):
    """A call that did not give a usable 2xx answer."""

    def __init__(self, detail: str, *, status: int | None = None, transient: bool,
                 body: Any = None, retry_after: float | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.status = status
        self.transient = transient
        self.body = body
        self.retry_after = retry_after


class ServiceClient:
    """Calls on behalf of one terminal token."""

    def __init__(self, base_url: str, token: str, *, timeout: float = 5.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers.update({"Authorization": f"Bearer {token}", "User-Agent": USER_AGENT})

    def call(self, method: str, path: str, *, json: Any = None, params: Mapping[str, Any] | None = None,
             timeout: float | None = None) -> tuple[int, Any]:
        """``(status, body)`` of a 2xx answer; raises ``ServiceError`` otherwise."""
        limit = self.timeout if timeout is None else timeout
        try:
            response = self.session.request(method, self.base_url + path, json=json, params=params,
                                            timeout=(limit, limit))
        except requests.Timeout as exc:
            raise ServiceError(f"{method} {path}: timed out after {limit:g} s", transient=True) from exc
        except requests.RequestException as exc:
            raise ServiceError(f"{method} {path}: {type(exc).__name__}", transient=True) from exc
        try:
            body = response.json()
        except ValueError:
            body = None
        status = response.status_code
        if 200 <= status < 300:
            return status, body
        detail = body.get("detail") if isinstance(body, dict) else None
        raise ServiceError(f"{method} {path}: {status} {detail or response.reason}", status=status,
                           transient=status >= 500 or status == 429, body=body,
                           retry_after=_retry_after(response.headers.get("Retry-After")))

    # -- the endpoints -------------------------------------------------------------------------
    def me(self) -> dict[str, Any]:
        return self.call("GET", "/v1/terminals/me")[1]  # type: ignore[no-any-return]

    def reader_keys(self) -> dict[str, Any]:
        return self.call("GET", "/v1/terminals/me/reader-keys")[1]  # type: ignore[no-any-return]

    def jwks(self) -> dict[str, Any]:
        return self.call("GET", "/.well-known/jwks.json")[1]  # type: ignore[no-any-return]

    def revocations(self, since: int) -> dict[str, Any]:
        return self.call("GET", "/v1/trust/revocations", params={"since": since})[1]  # type: ignore[no-any-return]

    def verify(self, body: Mapping[str, Any], timeout: float) -> dict[str, Any]:
        return self.call("POST", "/v1/verify", json=dict(body), timeout=timeout)[1]  # type: ignore[no-any-return]

    def ticket(self, hall: str, body: Mapping[str, Any], timeout: float) -> dict[str, Any]:
        path = f"/v1/halls/{requests.utils.quote(hall, safe='')}/tickets"
        return self.call("POST", path, json=dict(body), timeout=timeout)[1]  # type: ignore[no-any-return]

    def taps(self, records: list[Mapping[str, Any]], timeout: float) -> dict[str, Any]:
        return self.call("POST", "/v1/taps", json={"records": records}, timeout=timeout)[1]  # type: ignore[no-any-return]

    def close(self) -> None:
        self.session.close()


class Uplink:
    """Online-first decisions and the backoff that keeps a reader offline after a failure.

    After a failed try the reader decides offline for ``retry_after_s``, doubling per consecutive
    failure up to ``retry_max_s``; any answer from the server (a scan, a sync, an upload) ends the
    backoff at once. ``request_id`` is sent with every try; a server that refuses the field (422
    naming it: one that predates it) is asked again at once without it, and not sent it again
    until the next sync.
    """

    def __init__(self, client: ServiceClient, kind: str, site: Mapping[str, str], *, timeout: float,
                 retry_after_s: float, retry_max_s: float, monotonic: Callable[[], float] = time.monotonic,
                 on_error: Callable[[str | None], None] = lambda error: None) -> None:
        self.client, self.kind, self.site = client, kind, site
        self.timeout = timeout
        self.retry_after_s, self.retry_max_s = retry_after_s, retry_max_s
        self.monotonic = monotonic
        self.on_error = on_error
        self.send_request_id = True
        self._failures = 0
        self._offline_until = 0.0

    @property
    def up(self) -> bool:
        """Whether the next scan should ask the server."""
        return self.monotonic() >= self._offline_until

    def offline_for(self) -> float:
        return max(0.0, self._offline_until - self.monotonic())

    def reachable(self, answered: bool, error: str | None = None) -> None:
        """Record the outcome of any call: an answer ends the backoff, a failure extends it."""
        if error is not None:
            self.on_error(error)
        if answered:
            self._failures, self._offline_until = 0, 0.0
            return
        delay = min(self.retry_max_s, self.retry_after_s * 2 ** self._failures)
        self._failures += 1
        self._offline_until = self.monotonic() + delay

    def ask(self, code: str, direction: str | None,
            service: str | None) -> tuple[dict[str, Any] | None, str | None, str | None]:
        """``(answer, None, request_id)`` when the server decided; ``(None, why, request_id)``
        when the reader must decide offline (``request_id``: what was sent, if anything)."""
        body: dict[str, Any] = {"code": code}
        if direction is not None:
            body["direction"] = direction
        if self.send_request_id:
            body["request_id"] = uuid.uuid4().hex
        try:
            try:
                answer = self._post(body, service)
            except ServiceError as exc:
                if exc.status != 422 or "request_id" not in str(exc.body) or "request_id" not in body:
                    raise
                self.send_request_id = False
                del body["request_id"]
                answer = self._post(body, service)
        except ServiceError as exc:
            self.reachable(not exc.transient, exc.detail)
            return None, exc.detail, body.get("request_id")
        self.reachable(True)
        if (not isinstance(answer, dict) or answer.get("decision") not in ("accept", "deny")
                or answer.get("reason") not in REASONS):
            return None, "unreadable answer from the server", body.get("request_id")
        if answer["reason"] == "degraded" and self.kind != "hall":
            return None, "server degraded", body.get("request_id")
        return answer, None, body.get("request_id")

    def _post(self, body: dict[str, Any], service: str | None) -> Any:
        if self.kind == "hall" and service is not None:
            return self.client.ticket(self.site.get("hall", ""), {**body, "service": service},
                                      self.timeout)
        return self.client.verify(body, self.timeout)


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None

"""An open-loop, constant-rate HTTP/1.1 client for latency at a fixed load (what wrk2 does and
Debian's wrk cannot: wrk is closed-loop, each connection waits for its answer before sending again,
so a slow server is sent less and its stalls vanish from the figures — coordinated omission).

Request i is due at ``start + i / rate`` whatever happened before it. Due requests queue for the
next free keep-alive connection of a fixed set, and each latency runs from when its request was
DUE to when its answer was read, so time spent waiting behind a stalled server counts. Every
answer must be a 200 with ``"decision":"accept"``; anything else is counted by reason.

Plain asyncio streams and a minimal HTTP/1.1 reader (gunicorn always sends Content-Length here);
a connection the server closed (keep-alive timeout, worker recycled) is reopened and the request
sent again with the next code, counted in ``reconnects``.
"""
from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from dataclasses import dataclass, field

_ACCEPT = re.compile(rb'"decision"\s*:\s*"accept"')
_REASON = re.compile(rb'"reason"\s*:\s*"([\w-]+)"')


@dataclass
class OpenLoopResult:
    rate: float
    seconds: float
    latencies_ms: list[float] = field(default_factory=list)
    ok: int = 0
    unexpected: Counter[str] = field(default_factory=Counter)
    reconnects: int = 0
    unanswered: int = 0  # with a timeout: requests not answered within it (no latency counted)
    late_start_ms: float = 0.0  # worst lag of the scheduler itself (the client keeping up?)

    @property
    def achieved(self) -> float:
        return len(self.latencies_ms) / self.seconds


class Connection:
    """One keep-alive HTTP/1.1 connection, opened on first use and again after a close."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def exchange(self, request: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        body = await self.reader.readexactly(length) if length else b""
        if b"connection: close" in head.lower():
            self.close()
        return status, body

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


def verify_request(host: str, path: str, token: str, code: str) -> bytes:
    body = b'{"code":"' + code.encode("ascii") + b'"}'
    return (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body


def _get(host: str, path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()


async def drive(host: str, port: int, path: str, token: str, codes: list[str], rate: float,
                seconds: float, connections: int, *, timeout: float | None = None,
                warm: bool = True) -> OpenLoopResult:
    """The open loop in a running event loop. ``timeout``: an answer not in within that many
    seconds of when its request was due counts as unanswered (its connection is dropped).
    ``warm``: open every connection (a readiness GET) before the clock starts — not when the
    server under test may not answer one (a worker whose threads slow clients hold)."""
    result = OpenLoopResult(rate, seconds)
    due: asyncio.Queue[float | None] = asyncio.Queue()
    pool = iter(codes)
    conns = [Connection(host, port) for _ in range(connections)]
    for conn in conns if warm else ():
        await conn.exchange(_get(host, "/healthz/ready"))

    async def worker(conn: Connection) -> None:
        while (when := await due.get()) is not None:
            status, body = 0, b""
            for _ in (1, 2):
                exchange = conn.exchange(verify_request(host, path, token, next(pool)))
                try:
                    if timeout is None:
                        status, body = await exchange
                    else:
                        status, body = await asyncio.wait_for(
                            exchange, max(when + timeout - time.perf_counter(), 0.001))
                    break
                except asyncio.TimeoutError:
                    conn.close()
                    result.unanswered += 1
                    status = -1
                    break
                except (ConnectionError, asyncio.IncompleteReadError, OSError):
                    conn.close()
                    result.reconnects += 1
            if status == -1:
                continue
            result.latencies_ms.append((time.perf_counter() - when) * 1000)
            if status == 200 and _ACCEPT.search(body):
                result.ok += 1
            else:
                found = _REASON.search(body) if status == 200 else None
                result.unexpected[found.group(1).decode() if found else f"http_{status}"] += 1

    tasks = [asyncio.create_task(worker(conn)) for conn in conns]
    total = int(rate * seconds)
    start = time.perf_counter()
    for i in range(total):
        when = start + i / rate
        delay = when - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            result.late_start_ms = max(result.late_start_ms, -delay * 1000)
        due.put_nowait(when)
    for _ in conns:
        due.put_nowait(None)
    await asyncio.gather(*tasks)
    for conn in conns:
        conn.close()
    return result


def run(base_url: str, path: str, token: str, codes: list[str], rate: float, seconds: float,
        connections: int = 32) -> OpenLoopResult:
    """``rate`` requests/s for ``seconds`` against ``base_url`` (http://127.0.0.1:PORT)."""
    host, _, port = base_url.removeprefix("http://").partition(":")
    if len(codes) < rate * seconds + 2 * connections:
        raise ValueError(f"{len(codes)} codes are too few for {rate:.0f}/s over {seconds} s")
    return asyncio.run(drive(host, int(port), path, token, codes, rate, seconds, connections))

"""Phone-side mint time of device-bound codes: Python (``app.codes.device``), Node.js WebCrypto
and headless Chromium WebCrypto (``loadtest/phone/device_mint.mjs``), on one core.

    python -m loadtest.bench_phone [--count 500]

Chromium loads ``loadtest/phone/bench.html`` from a server on 127.0.0.1 started here, which also
receives the result; a missing ``node`` or ``chromium`` is reported and skipped. Every code made
in JS is checked by the Python core before its time is reported.
"""
from __future__ import annotations

import argparse
import http.server
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from functools import partial
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from app.codes.device import issue_certificate, mint_device_code, public_key_from_jwk
from app.codes.replay import MemoryReplayStore
from app.codes.trust import StaticTrust
from app.codes.verify import Verifier
from app.codes.wire import b64url_encode

PHONE = Path(__file__).resolve().parent / "phone"
SERVICE = ec.generate_private_key(ec.SECP256R1())
KEYS = {"svc-key1": ("ES256", SERVICE.public_key())}


def _certificate(device_key: ec.EllipticCurvePublicKey) -> bytes:
    now = time.time()
    return issue_certificate(SERVICE, "svc-key1", subject="benchPhone1", entitlements=("sen", "dis", "sap", "hg"),
                             device_key=device_key, now=now - 60, expires_at=now + 3600).certificate


def _accepted(code: str) -> bool:
    verifier = Verifier(lambda: KEYS, StaticTrust(), MemoryReplayStore(), "cc", max_ttl=60)  # type: ignore[arg-type]
    return verifier.verify(code).accepted


def python_mint_ms(count: int) -> float:
    device = ec.generate_private_key(ec.SECP256R1())
    cert = _certificate(device.public_key())
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(count):
            code = mint_device_code(cert, device, now=time.time()).code
        best = min(best, (time.perf_counter() - started) / count * 1000)
    assert _accepted(code)
    return best


def node_mint_ms(count: int) -> float | None:
    node = shutil.which("node")
    if node is None:
        return None
    phone = subprocess.Popen([node, str(PHONE / "node_phone.mjs"), "cit_bench", str(count)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    assert phone.stdout is not None
    hello = json.loads(phone.stdout.readline())
    cert = _certificate(public_key_from_jwk(hello["jwk"]))
    out, _ = phone.communicate(b64url_encode(cert).decode() + "\n", timeout=300)
    lines = out.splitlines()
    assert _accepted(lines[0])
    return float(json.loads(lines[-1])["mint_ms"])


def chromium_mint_ms(count: int) -> dict[str, Any] | None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        return None
    # The page makes its own key; the certificate certifies a key of ours, which only makes the
    # codes fail the device signature — the timing is what counts here, not acceptance.
    cert = _certificate(ec.generate_private_key(ec.SECP256R1()).public_key())
    received: dict[str, Any] = {}
    done = threading.Event()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the http.server hook's name
            received.update(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()
            done.set()

        def log_message(self, *args: object) -> None:
            pass

    class QuietServer(http.server.ThreadingHTTPServer):
        def handle_error(self, request: object, client_address: object) -> None:
            pass  # the browser is killed mid-request once the result is in

    server = QuietServer(("127.0.0.1", 0), partial(Handler, directory=str(PHONE)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/bench.html?count={count}&cert={b64url_encode(cert).decode()}"
    with tempfile.TemporaryDirectory(prefix="cc-chromium-") as profile:
        browser = subprocess.Popen([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                                    "--no-first-run", "--disable-background-networking", "--disable-component-update",
                                    "--disable-sync", f"--user-data-dir={profile}", url],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            done.wait(timeout=300)
        finally:
            browser.kill()
            browser.wait()
            server.shutdown()
    return received or None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--count", type=int, default=500)
    args = parser.parse_args(argv)
    try:
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    except (AttributeError, OSError):
        pass
    print(f"device code mint, best of 5 x {args.count}")
    print(f"Python (cryptography)       {python_mint_ms(args.count):7.3f} ms/code")
    node = node_mint_ms(args.count)
    print(f"Node.js WebCrypto           {node:7.3f} ms/code" if node is not None else "Node.js: not installed")
    browser = chromium_mint_ms(args.count)
    if browser is None:
        print("Chromium: not installed, or no result")
    else:
        print(f"Chromium WebCrypto          {browser['mint_ms']:7.3f} ms/code   ({browser['agent']})")


if __name__ == "__main__":
    main()

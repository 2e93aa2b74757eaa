"""Phone-side mint time of device-bound codes, signed ``CC2:`` and sealed ``CC3:``: Python
(``app.codes.device``), Node.js WebCrypto and headless Chromium WebCrypto (the citizen app's own
module ``app/web/static/devicecode.js``, through ``loadtest/phone/phone.mjs``), on one core.

    python -m loadtest.bench_phone [--count 500]

Chromium loads ``loadtest/phone/bench.html`` from a server on 127.0.0.1 started here (it serves
``loadtest/phone/`` and ``app/web/static/`` only), which certifies the page's key and receives
the result; a missing ``node`` or ``chromium`` is reported and skipped. Sample codes made in JS
are checked by the Python core (both forms) before their time is reported.
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
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from app.codes.device import (issue_certificate, issue_sealed_certificate, mint_device_code, mint_sealed_code,
                              public_jwk, public_key_from_jwk, reader_kid)
from app.codes.replay import MemoryReplayStore
from app.codes.trust import StaticTrust
from app.codes.verify import Verifier
from app.codes.wire import b64url_decode, b64url_encode

ROOT = Path(__file__).resolve().parents[1]
PHONE = ROOT / "loadtest" / "phone"
SERVED = ("/loadtest/phone/", "/app/web/static/")
SERVICE = ec.generate_private_key(ec.SECP256R1())
READER = ec.generate_private_key(ec.SECP256R1())
KEYS = {"svc-key1": ("ES256", SERVICE.public_key())}
ENTITLEMENTS = ("sen", "dis", "sap", "hg")


def _job(device_key: ec.EllipticCurvePublicKey, count: int) -> dict[str, Any]:
    """Both certificates for ``device_key`` and the reader key to seal to, as a phone.mjs job."""
    now = time.time()
    common = {"subject": "benchPhone1", "entitlements": ENTITLEMENTS, "device_key": device_key,
              "now": now - 60, "expires_at": now + 3600}
    cert = issue_certificate(SERVICE, "svc-key1", **common).certificate  # type: ignore[arg-type]
    cert3 = issue_sealed_certificate(SERVICE, "svc-key1", **common).certificate  # type: ignore[arg-type]
    reader = {"kid": b64url_encode(reader_kid(READER.public_key())).decode(), "public_key": public_jwk(READER.public_key()),
              "valid_from": int(now) - 3600, "valid_until": int(now) + 3600}
    return {"certificate": b64url_encode(cert).decode(), "sealed_certificate": b64url_encode(cert3).decode(),
            "reader": reader, "count": count}


def _accepted(*codes: str) -> bool:
    verifier = Verifier(lambda: KEYS, StaticTrust(), MemoryReplayStore(), "cc", max_ttl=60,  # type: ignore[arg-type]
                        reader_keys=lambda: {reader_kid(READER.public_key()): READER})
    return all(verifier.verify(code).accepted for code in codes)


def _best(count: int, make: Any) -> tuple[float, str]:
    best, code = float("inf"), ""
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(count):
            code = make()
        best = min(best, (time.perf_counter() - started) / count * 1000)
    return best, code


def python_mint_ms(count: int) -> tuple[float, float]:
    device = ec.generate_private_key(ec.SECP256R1())
    job = _job(device.public_key(), count)
    cert, cert3 = (b64url_decode(job[k].encode()) for k in ("certificate", "sealed_certificate"))
    rkid, rkey = reader_kid(READER.public_key()), READER.public_key()
    plain, code = _best(count, lambda: mint_device_code(cert, device, now=time.time()).code)
    sealed, code3 = _best(count, lambda: mint_sealed_code(cert3, device, rkid, rkey, now=time.time()).code)
    assert _accepted(code, code3)
    return plain, sealed


def node_mint_ms(count: int) -> tuple[float, float] | None:
    node = shutil.which("node")
    if node is None:
        return None
    phone = subprocess.Popen([node, str(PHONE / "node_phone.mjs"), "cit_bench"], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    assert phone.stdout is not None
    hello = json.loads(phone.stdout.readline())
    out, _ = phone.communicate(json.dumps(_job(public_key_from_jwk(hello["jwk"]), count)) + "\n", timeout=600)
    result = json.loads(out.splitlines()[-1])
    assert _accepted(*result["codes"][-3:], *result["sealed"][-3:])
    return float(result["mint_ms"]), float(result["sealed_mint_ms"])


def chromium_mint_ms(count: int) -> dict[str, Any] | None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        return None
    received: dict[str, Any] = {}
    done = threading.Event()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server hook's name
            if not self.path.startswith(SERVED) or ".." in self.path:
                self.send_error(404)
                return
            super().do_GET()

        def do_POST(self) -> None:  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if self.path == "/hello":  # certify the page's own key: its codes must be accepted
                answer = json.dumps(_job(public_key_from_jwk(body["jwk"]), count)).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)
                return
            received.update(body)
            self.send_response(204)
            self.end_headers()
            done.set()

        def guess_type(self, path: Any) -> str:
            return "text/javascript" if str(path).endswith((".js", ".mjs")) else super().guess_type(path)

        def log_message(self, *args: object) -> None:
            pass

    class QuietServer(http.server.ThreadingHTTPServer):
        def handle_error(self, request: object, client_address: object) -> None:
            pass  # the browser is killed mid-request once the result is in

    server = QuietServer(("127.0.0.1", 0), lambda *a: Handler(*a, directory=str(ROOT)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/loadtest/phone/bench.html?count={count}"
    with tempfile.TemporaryDirectory(prefix="cc-chromium-") as profile:
        browser = subprocess.Popen([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                                    "--no-first-run", "--disable-background-networking", "--disable-component-update",
                                    "--disable-sync", f"--user-data-dir={profile}", url],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            done.wait(timeout=600)
        finally:
            browser.kill()
            browser.wait()
            server.shutdown()
    if received:
        assert _accepted(*received["sample"], *received["sealed_sample"]), "Chromium's codes were not accepted"
    return received or None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--count", type=int, default=500)
    args = parser.parse_args(argv)
    try:
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    except (AttributeError, OSError):
        pass
    print(f"device code mint, best of 5 x {args.count}, ms/code      CC2     CC3 (sealed)")
    plain, sealed = python_mint_ms(args.count)
    print(f"Python (cryptography)                     {plain:7.3f} {sealed:7.3f}")
    node = node_mint_ms(args.count)
    if node is None:
        print("Node.js: not installed")
    else:
        print(f"Node.js WebCrypto                         {node[0]:7.3f} {node[1]:7.3f}")
    browser = chromium_mint_ms(args.count)
    if browser is None:
        print("Chromium: not installed, or no result")
    else:
        print(f"Chromium WebCrypto                        {browser['mint_ms']:7.3f} {browser['sealed_mint_ms']:7.3f}"
              f"   ({browser['agent']})")


if __name__ == "__main__":
    main()

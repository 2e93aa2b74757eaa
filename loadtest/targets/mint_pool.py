"""Write a pool of fresh codes, one a line, signed with the current key of a service's key ring.

    TARGET_PYTHON mint_pool.py KEYS_DIR COUNT OUT [--ttl 60] [--issuer cc]

Run with the target checkout's interpreter, so the codes are minted by the code under test. Each
code has its own random 11-character pseudonym (as app.registry.citizens makes them), so no bus
tap is a duplicate, and an entitlement mix like a city's. Minting ~2,000 codes through
``POST /v1/me/code`` takes seconds; here 20,000 take about one. Prints the seconds it took.
"""
from __future__ import annotations

import argparse
import itertools
import secrets
import time
from pathlib import Path

from app.codes.mint import mint
from app.signing.keyring import KeyStore

ENTITLEMENT_MIX = ((), ("stu",), ("sen",), (), ("dis", "hg"), ("sen", "dis", "sap", "hg"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("keys_dir", type=Path)
    parser.add_argument("count", type=int)
    parser.add_argument("out", type=Path)
    parser.add_argument("--ttl", type=int, default=60)
    parser.add_argument("--issuer", default="cc")
    args = parser.parse_args()
    started = time.perf_counter()
    ring = KeyStore(args.keys_dir).load()
    now, mix = time.time(), itertools.cycle(ENTITLEMENT_MIX)
    lines = [mint(ring, issuer=args.issuer, subject=secrets.token_urlsafe(8), entitlements=next(mix),
                  ttl_seconds=args.ttl, now=now).code for _ in range(args.count)]
    args.out.write_text("\n".join(lines) + "\n")
    print(f"{time.perf_counter() - started:.3f}")


if __name__ == "__main__":
    main()

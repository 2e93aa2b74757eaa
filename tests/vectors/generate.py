"""Rewrite the cross-implementation test vectors: ``python -m tests.vectors.generate [--out DIR]``.

Each run generates fresh key pairs in memory, signs every case, and writes only public material:
``jwks.json`` (public keys), ``trust.json`` (the revocation feed) and ``cases.json`` (clock,
settings, used pairs, cases). The private keys are discarded when the run ends. The result is
checked against the format (``tests.vectors.schema``) before anything is written.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from tests.vectors import cases_authentic, cases_forged, schema
from tests.vectors.catalogue import Catalogue

HERE = Path(__file__).resolve().parent


def build() -> dict[str, Any]:
    """A fresh catalogue: ``{file name: JSON document}``."""
    catalogue = Catalogue()
    cases_authentic.add_all(catalogue)
    cases_forged.add_all(catalogue)
    return catalogue.documents()


def write(folder: Path) -> dict[str, Any]:
    """Generate and write the vector files into ``folder``; return the documents."""
    documents = build()
    found = schema.problems(documents)
    if found:
        raise schema.VectorFormatError("; ".join(found))
    folder.mkdir(parents=True, exist_ok=True)
    for name, document in documents.items():
        text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
        (folder / name).write_text(text, encoding="utf-8")
    return documents


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.vectors.generate",
                                     description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE, help="folder to write (default: tests/vectors)")
    args = parser.parse_args(argv)
    documents: dict[str, Any] = write(args.out)
    counts = (len(documents["cases.json"]["cases"]), len(documents["jwks.json"]["keys"]),
              len(documents["trust.json"]["entries"]))
    print("wrote {} cases, {} public keys and {} feed entries to ".format(*counts) + str(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())

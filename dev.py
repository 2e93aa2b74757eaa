#!/usr/bin/env python3
"""Bootstrap for a fresh machine with only Python 3.11: ``python3 dev.py run`` or ``python3 dev.py test``.

Creates ``.venv`` beside this file, installs the project with its extras into it (again only when
setup.cfg changed), then runs the service or the test suite inside it.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / "bin"
STAMP = VENV / ".citycode-installed"


def ensure_venv() -> None:
    if sys.version_info < (3, 11):
        sys.exit(f"CityCode needs Python 3.11 or newer; this is {sys.version.split()[0]}")
    if not (BIN / "python").exists():
        print(f"creating {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    wanted = hashlib.sha256((ROOT / "setup.cfg").read_bytes() + (ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text() == wanted:
        return
    print("installing CityCode and its dependencies into .venv", flush=True)
    pip = [str(BIN / "python"), "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(pip + ["install", "--upgrade", "pip>=24", "setuptools>=69", "wheel"], check=True)
    subprocess.run(pip + ["install", "-e", f"{ROOT}[test,scanner,loadtest]"], check=True)
    STAMP.write_text(wanted)


def main(argv: list[str]) -> int:
    command, rest = (argv[0], argv[1:]) if argv else ("", [])
    if command not in ("run", "test", "setup"):
        print(__doc__)
        return 2
    ensure_venv()
    os.chdir(ROOT)
    if command == "setup":
        return 0
    if command == "run":
        os.execv(str(BIN / "citycode"), [str(BIN / "citycode"), "serve", *rest])
    return subprocess.call([str(BIN / "python"), "-m", "pytest", *rest])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

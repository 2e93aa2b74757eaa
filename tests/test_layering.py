"""The layering DESIGN.md asks for: the verification core and the domain know nothing of Flask."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOMAIN_PACKAGES = ("codes", "scenes", "registry", "signing", "hall", "audit", "verification", "city")


def test_offline_readers_can_import_the_core_without_flask() -> None:
    probe = "import sys, app.codes.verify, app.codes.jwks, app.codes.trust; print('flask' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_domain_modules_do_not_import_flask_or_werkzeug() -> None:
    offenders = []
    for package in DOMAIN_PACKAGES:
        for path in (ROOT / "app" / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                         else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
                if any(n.split(".")[0] in ("flask", "flask_smorest", "werkzeug") for n in names):
                    offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []

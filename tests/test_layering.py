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


def _imports(tree: ast.AST) -> list[str]:
    """Every module a file imports, wherever the import stands (``TYPE_CHECKING`` blocks and
    function bodies included); ``from app import runtime`` counts as ``app.runtime``."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.append(node.module)
            found.extend(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def test_readers_leave_all_cryptography_to_the_core() -> None:
    """scanners/ verifies, opens sealed codes and parses keys with app.codes, the one core: no
    module of it imports a cryptography library itself."""
    offenders = [str(path.relative_to(ROOT)) for path in sorted((ROOT / "scanners").rglob("*.py"))
                 if any(name.split(".")[0] in ("cryptography", "jwt", "joserfc", "pycose", "cbor2")
                        for name in _imports(ast.parse(path.read_text(encoding="utf-8"))))]
    assert offenders == []


def test_domain_packages_never_import_the_runtime() -> None:
    """Domain parts get their collaborators from the composition root (app/compose.py), never
    the whole runtime."""
    domain = {*DOMAIN_PACKAGES, "taps", "records"}
    offenders = [str(path.relative_to(ROOT)) for package in sorted(domain)
                 for path in sorted((ROOT / "app" / package).rglob("*.py"))
                 if "app.runtime" in _imports(ast.parse(path.read_text(encoding="utf-8")))]
    assert offenders == []


def _constructed(path: Path, classes: set[str]) -> set[str]:
    """The names of ``classes`` called in ``path`` (``Name(...)`` or ``module.Name(...)``)."""
    called = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call):
            name = (node.func.id if isinstance(node.func, ast.Name)
                    else node.func.attr if isinstance(node.func, ast.Attribute) else None)
            if name in classes:
                called.add(name)
    return called


def test_only_the_composition_root_builds_the_scan_path_parts() -> None:
    parts = {"ScanService", "OnlineVerifier", "HallDesk", "DisclosureDesk", "TapDesk"}
    compose = ROOT / "app" / "compose.py"
    elsewhere = {str(path.relative_to(ROOT)): sorted(built) for path in sorted((ROOT / "app").rglob("*.py"))
                 if path != compose and (built := _constructed(path, parts))}
    # The record writer is a process of its own (python -m app.records), not a web worker: it
    # builds the one part it needs, the tap desk that stores queued uploads, in its main().
    assert elsewhere in ({}, {"app/records/__main__.py": ["TapDesk"]})
    assert _constructed(compose, parts) == parts

"""The README's walk-through of a citizen's day runs, as written, against a real server."""
from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from types import ModuleType

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"

pytestmark = pytest.mark.slow


def _walkthrough() -> str:
    text = README.read_text(encoding="utf-8")
    section = text.split("## A citizen's day", 1)[1]
    match = re.search(r"```bash\n(.*?)```", section, re.S)
    assert match, "README has no bash block under 'A citizen's day'"
    return match.group(1)


def test_readme_walkthrough_runs_and_says_what_the_readme_says(serving: ModuleType) -> None:
    with serving.running_server() as server:
        env = {**os.environ, "API": server.base_url, "CITYCODE_ADMIN_TOKEN": server.admin_token}
        result = subprocess.run(["bash", "-c", _walkthrough()], env=env, capture_output=True,
                                text=True, timeout=120, cwd=server.data_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert '"fare":{"amount_cents":100,"category":"student","display":"concession"}' in out
    assert '"to":"\\u674e\\u6751"' in out  # 李村
    assert '"reason":"already_admitted"' in out
    assert '"ticket":"B001"' in out and '"calling":[{"counter":"4","ticket":"B001"}]' in out
    assert '"number":"QD2026S0042"' in out and "\n410\n" in out
    assert '"action":"disclosure_read"' in out

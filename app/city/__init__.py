"""The city's reference data (fares, metro network, scenic spots, halls), shipped as JSON files.

``CITYCODE_CITY_DIR`` may point at a folder with replacement files of the same names.
"""
from __future__ import annotations

import json
import os
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

CITY_TZ = ZoneInfo("Asia/Shanghai")


@lru_cache(maxsize=None)
def load(name: str) -> Any:
    """Parse ``<name>.json`` from ``CITYCODE_CITY_DIR`` if it has one, else the shipped copy."""
    override = os.environ.get("CITYCODE_CITY_DIR")
    if override and (Path(override) / f"{name}.json").is_file():
        return json.loads((Path(override) / f"{name}.json").read_text(encoding="utf-8"))
    return json.loads(resources.files("app.city").joinpath("data", f"{name}.json").read_text(encoding="utf-8"))

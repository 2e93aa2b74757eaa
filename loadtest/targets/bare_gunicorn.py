"""gunicorn settings for the bare baseline: every plain setting of the target checkout's
``app/serving/gunicorn_conf.py`` (worker class, threads, keep-alive, backlog, timeouts,
max_requests and jitter, logging ...), so the baseline is served exactly as ``citycode serve``
serves the service. Hooks (callables) are not copied: they start the embedded Redis, migrate the
database and clean up metrics, which a bare app has no use for. ``bind`` and ``workers`` come from
the command line (``--workers 1``), as ``citycode serve --workers 1`` passes them.

The file is read by path, not imported as ``app.serving.gunicorn_conf``, so the master of the
baseline loads none of the project's modules (its worker would inherit them: more objects for
the garbage collector than a bare app has).
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

from gunicorn.config import KNOWN_SETTINGS

_spec = importlib.util.find_spec("app")
assert _spec is not None and _spec.submodule_search_locations, "the target checkout's app package"
CONF_PATH = Path(list(_spec.submodule_search_locations)[0]) / "serving" / "gunicorn_conf.py"
_namespace: dict[str, object] = {"__file__": str(CONF_PATH), "__name__": "citycode_gunicorn_conf"}
exec(compile(CONF_PATH.read_text(), str(CONF_PATH), "exec"), _namespace)  # noqa: S102

_SETTINGS = {s.name for s in KNOWN_SETTINGS}
COPIED = {name: value for name, value in _namespace.items()
          if name in _SETTINGS and not callable(value) and name not in ("bind", "workers", "proc_name")}
globals().update(COPIED)
proc_name = "citycode-bare"

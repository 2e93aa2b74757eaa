"""The serving model's settings (issue #9): read from the environment, checked before serving."""
from __future__ import annotations

import importlib
import resource

import pytest
from click.testing import CliRunner

from app.cli import main
from app.serving.options import FD_RESERVE, ServingOptionError, ServingOptions, raise_open_file_limit


def test_the_default_model_is_the_buffered_thread_worker_with_header_and_body_timeouts() -> None:
    options = ServingOptions.from_env({})
    assert options.worker_class_path == "app.serving.buffered.BufferedThreadWorker"
    assert (options.header_timeout, options.body_timeout, options.worker_connections) == (10.0, 30.0, 10_000)
    assert options.threads == 4


@pytest.mark.parametrize(("kind", "path"), [("gevent", "app.serving.workers.GeventWorker"),
                                            ("gthread", "app.serving.workers.ThreadWorker"),
                                            ("buffered", "app.serving.buffered.BufferedThreadWorker")])
def test_every_worker_class_can_be_chosen_and_loaded(kind: str, path: str) -> None:
    options = ServingOptions.from_env({"CITYCODE_WORKER_CLASS": kind})
    assert options.worker_class_path == path
    module, _, name = path.rpartition(".")
    assert isinstance(getattr(importlib.import_module(module), name), type)


def test_settings_come_from_the_environment() -> None:
    options = ServingOptions.from_env({"CITYCODE_WORKER_CLASS": "gthread", "CITYCODE_HEADER_TIMEOUT": "2.5",
                                       "CITYCODE_BODY_TIMEOUT": "7", "CITYCODE_WORKER_CONNECTIONS": "500",
                                       "CITYCODE_THREADS": "8"})
    assert options == ServingOptions("gthread", 500, 2.5, 7.0, 8)
    assert options.worker_class_path == "app.serving.workers.ThreadWorker"


@pytest.mark.parametrize("env", [{"CITYCODE_WORKER_CLASS": "sync"}, {"CITYCODE_HEADER_TIMEOUT": "0"},
                                 {"CITYCODE_BODY_TIMEOUT": "soon"}, {"CITYCODE_WORKER_CONNECTIONS": "1"}])
def test_an_unusable_setting_is_refused(env: dict[str, str]) -> None:
    with pytest.raises(ServingOptionError, match=next(iter(env))):
        ServingOptions.from_env(env)


def test_serve_refuses_an_unusable_setting_before_starting(tmp_path: object) -> None:
    result = CliRunner().invoke(main, ["serve"], env={"CITYCODE_WORKER_CLASS": "eventlet",
                                                      "CITYCODE_DATA_DIR": str(tmp_path)})
    assert result.exit_code == 2 and "CITYCODE_WORKER_CLASS" in result.output


def test_connections_per_worker_stay_below_the_open_file_limit() -> None:
    options = ServingOptions.from_env({})
    assert options.connections_within(1024) == 1024 - FD_RESERVE
    assert options.connections_within(1 << 20) == 10_000


def test_the_soft_open_file_limit_is_raised_to_the_hard_one() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        if hard != resource.RLIM_INFINITY and hard > 512:
            resource.setrlimit(resource.RLIMIT_NOFILE, (512, hard))
        assert raise_open_file_limit() == resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        if hard != resource.RLIM_INFINITY:
            assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == hard
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.mark.parametrize(("setting", "value"), [("certfile", __file__), ("protocol", "uwsgi"),
                                                ("http2_cleartext", "upgrade")])
def test_the_buffered_worker_refuses_to_start_where_it_would_not_parse_plain_http1(setting: str,
                                                                                   value: str) -> None:
    from gunicorn.config import Config
    from gunicorn.errors import ConfigError

    from app.serving.buffered import BufferedThreadWorker

    cfg = Config()
    cfg.set(setting, value)
    with pytest.raises(ConfigError, match="plain HTTP/1"):
        BufferedThreadWorker.check_config(cfg, None)

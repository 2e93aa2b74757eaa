"""``citycode audit verify`` through click's test runner, against a migrated SQLite file."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import text

from app.audit import log as audit
from app.cli import main
from app.db import Database, migrate

Run = Callable[[], Result]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def database(data_dir: Path) -> Iterator[Database]:
    url = f"sqlite:///{data_dir / 'citycode.sqlite3'}"  # where the CLI looks with only the data dir set
    migrate(url)
    database = Database(url)
    yield database
    database.dispose()


@pytest.fixture
def run(data_dir: Path) -> Run:
    env = {"CITYCODE_DATA_DIR": str(data_dir), "DATABASE_URL": None}
    return lambda: CliRunner().invoke(main, ["audit", "verify"], env=env, catch_exceptions=False)


def _append(database: Database, n: int) -> None:
    for i in range(n):
        with database.session() as session:
            audit.append(session, actor_kind="terminal", actor_id=f"trm_{i}", action="scan",
                         subject="pseud0", site={"kind": "metro", "station": "五四广场"}, reason="ok",
                         details={"decision": "accept"})


@pytest.mark.parametrize("entries", [0, 5])
def test_an_intact_log_is_ok_and_counted(database: Database, run: Run, entries: int) -> None:
    _append(database, entries)
    result = run()
    assert result.exit_code == 0 and result.output.startswith(f"audit log ok ({entries} entries, "), result.output


@pytest.mark.parametrize(("tamper", "seq"), [
    ("UPDATE audit_log SET actor_id = 'trm_forged' WHERE seq = 3", 3),  # an edited row
    ("DELETE FROM audit_log WHERE seq = 5", 5),  # the newest row cut off
])
def test_a_tampered_log_exits_1_naming_the_first_bad_seq(database: Database, run: Run, tamper: str,
                                                          seq: int) -> None:
    _append(database, 5)
    with database.session() as session:
        session.execute(text(tamper))
    result = run()
    assert result.exit_code == 1
    assert result.output.splitlines()[0] == f"hash chain broken at seq {seq}", result.output

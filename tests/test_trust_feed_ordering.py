"""The revocation feed never lets a reader syncing with ``since=N`` skip an entry, even when a slow
writer's transaction and a fast one overlap (on PostgreSQL a sequence hands out versions at
insert, so without the feed-writer lock version 5 could commit after version 6 was read).

Each test runs on a SQLite file and on a throw-away PostgreSQL server (skipped, saying why, only
when no PostgreSQL binaries are installed; see ``tests/pg_support.py``).
"""
from __future__ import annotations

import random
import threading
from pathlib import Path
from typing import Iterator

import pytest
from sqlalchemy import select

from app.db import Database, migrate
from app.db.models import RevocationEvent
from app.registry import revocations
from tests.pg_support import postgres_server, postgres_url  # noqa: F401  (fixtures)


@pytest.fixture(params=["sqlite", "postgresql"])
def feed_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'feed.sqlite3'}"
        migrate(url)
    else:
        url = request.getfixturevalue("postgres_url")
    database = Database(url)
    try:
        yield database
    finally:
        database.dispose()


class FeedReader:
    """What an offline reader does: ask for entries after the last version it applied."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self.version = 0
        self.seen: list[str] = []

    def poll(self) -> None:
        while True:
            with self.database.session() as session:
                page = revocations.since(session, self.version)
            if page.full:
                self.seen = []
            self.seen += [str(entry["id"]) for entry in page.entries]
            self.version = page.version
            if page.version >= page.latest:
                return


def _record(database: Database, ref: str) -> None:
    with database.session() as session:
        revocations.record(session, "citizen_suspended", ref)


def _committed(database: Database) -> list[str]:
    with database.session() as session:
        return list(session.scalars(select(RevocationEvent.ref).order_by(RevocationEvent.version)))


def test_reader_polling_while_a_slow_writer_is_open_does_not_skip_its_entry(feed_db: Database) -> None:
    _record(feed_db, "seed")
    reader = FeedReader(feed_db)
    reader.poll()
    slow = feed_db.sessions()
    revocations.record(slow, "citizen_suspended", "slow")  # version taken, transaction held open
    trying = threading.Event()

    def fast_writer() -> None:
        trying.set()
        _record(feed_db, "fast")

    fast = threading.Thread(target=fast_writer)
    fast.start()
    assert trying.wait(10)
    fast.join(0.5)  # the fast writer commits now, unless it has to wait for the slow one
    reader.poll()  # in between: must not move past the slow writer's version
    slow.commit()
    slow.close()
    fast.join(20)
    assert not fast.is_alive()
    reader.poll()
    assert sorted(reader.seen) == ["fast", "seed", "slow"]
    assert reader.seen == _committed(feed_db)  # and in version order


def test_rolled_back_writer_leaves_a_gap_readers_pass_over(feed_db: Database) -> None:
    _record(feed_db, "one")
    aborted = feed_db.sessions()
    revocations.record(aborted, "citizen_suspended", "never")
    aborted.rollback()
    aborted.close()
    _record(feed_db, "two")
    reader = FeedReader(feed_db)
    reader.poll()
    assert reader.seen == ["one", "two"]


def test_many_overlapping_writers_and_a_polling_reader_see_every_entry(feed_db: Database) -> None:
    writers, per_writer = 4, 8
    done = threading.Event()
    reader = FeedReader(feed_db)
    failures: list[BaseException] = []

    def write(n: int) -> None:
        chance = random.Random(n)
        try:
            for i in range(per_writer):
                with feed_db.session() as session:
                    revocations.record(session, "citizen_suspended", f"w{n}-{i}")
                    if chance.random() < 0.5:  # hold the transaction a moment after the insert
                        threading.Event().wait(chance.uniform(0.001, 0.01))
        except BaseException as error:  # noqa: BLE001 (reported below)
            failures.append(error)

    def read() -> None:
        while not done.is_set():
            reader.poll()

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    polling = threading.Thread(target=read)
    polling.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    done.set()
    polling.join(60)
    assert failures == []
    reader.poll()
    assert len(reader.seen) == writers * per_writer
    assert reader.seen == _committed(feed_db)


def test_feed_times_past_2038_are_stored_and_served(feed_db: Database) -> None:
    year_2100 = 4102444800  # beyond a 32-bit integer: the column is 64-bit on every database
    with feed_db.session() as session:
        revocations.record(session, "citizen_suspended", "p-2100", at=year_2100)
    with feed_db.session() as session:
        page = revocations.since(session, 0)
    assert [(e["id"], e["at"]) for e in page.entries] == [("p-2100", year_2100)]

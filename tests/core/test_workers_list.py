"""`durable workers list`: running workers appear from the registry, idle ones included."""

from __future__ import annotations

import json
import os
import threading

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from toolkit import Durable
from toolkit.cli import main
from toolkit.storage import now_ms, registry
from toolkit.worker import Worker


def _workers(db_url: str) -> list[dict]:
    result = CliRunner().invoke(
        main, ["workers", "list", "--json", "--lease-timeout", "2", "--database-url", db_url]
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.output)["workers"]


def test_an_idle_worker_is_listed_with_its_queues_and_leaves_when_it_stops(app: Durable, db_url):
    app.queue("emails")
    app.queue("reports")
    worker = Worker(app, queues=["emails", "reports"], report_every=3600).start()
    try:
        for _ in range(200):  # registered once it has connected
            listed = _workers(db_url)
            if listed:
                break
            threading.Event().wait(0.05)
        (me,) = listed
        assert me["owner"] == app.executor.owner
        assert me["pid"] == os.getpid() and me["held"] == 0
        assert me["queues"] == ["emails", "reports"]
        assert me["alive"] is True and me["registered"] is True
        assert me["started_at"] is not None
        table = CliRunner().invoke(
            main, ["workers", "list", "--database-url", db_url], terminal_width=200
        )
        assert app.executor.owner in table.output and "alive" in table.output
    finally:
        worker.stop(grace=1)
    assert _workers(db_url) == []


def test_a_queue_name_must_be_a_string(app: Durable):
    with pytest.raises(TypeError, match="a queue name is a string, not int"):
        app.queue(7)  # type: ignore[arg-type]


def test_a_worker_not_seen_is_dead_and_forgotten_after_a_day(app: Durable, db_url):
    storage = app.storage
    storage.ensure_ready()
    registry.register(storage, "ghost:41:abcdef01", "ghost", 41, ["emails"])
    registry.register(storage, "old:42:abcdef02", "old", 42, [])
    r = storage.workers
    with storage.transaction() as conn:
        conn.execute(
            sa.update(r)
            .where(r.c.owner == "ghost:41:abcdef01")
            .values(last_seen_at=now_ms() - 60_000)
        )
        conn.execute(
            sa.update(r)
            .where(r.c.owner == "old:42:abcdef02")
            .values(last_seen_at=now_ms() - registry.FORGET_AFTER_MS - 1)
        )
    by_owner = {w["owner"]: w for w in _workers(db_url)}
    assert by_owner["ghost:41:abcdef01"]["alive"] is False
    assert by_owner["old:42:abcdef02"]["alive"] is False
    registry.register(storage, "new:43:abcdef03", "new", 43, [])  # forgets the day-old one
    assert {w["owner"] for w in _workers(db_url)} == {"ghost:41:abcdef01", "new:43:abcdef03"}

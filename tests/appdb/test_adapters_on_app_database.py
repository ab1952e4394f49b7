"""A status-column table in the app database kept apart from the state store gets its
write-backs exactly once: they are ``@transaction`` steps there (outputs rows), not the
guarded, at-least-once steps used for a legacy table in any other database."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from adapters.status_column import StatusColumnAdapter
from tests.adapters.test_status_column import COLUMNS, STATUS, jobs_maker, row
from toolkit import Durable, RetryPolicy


def test_write_backs_on_the_app_database_are_transactions(app_db_url, tmp_path):
    app = Durable(f"sqlite:///{tmp_path}/state.db", app_database_url=app_db_url, lease_timeout=2)
    app.upgrade()
    handled: list[int] = []

    def handle(job: dict[str, Any]) -> None:
        handled.append(int(job["id"]))
        if job["payload"] == "broken":
            raise ValueError("bad payload")

    with jobs_maker() as make:
        make(app_db_url, [row(1), row(2, payload="broken")])
        adapter = StatusColumnAdapter(
            app,
            app_db_url,
            table="jobs",
            key="id",
            status=STATUS,
            columns=COLUMNS,
            handler=handle,
            retry=RetryPolicy(max_attempts=2, initial_delay=0.05),
        )
        try:
            assert not adapter.same_database and adapter.exactly_once
            assert "exactly once" in adapter.promise
            with adapter.takeover(poll_interval=0.1) as takeover:
                assert takeover.wait_idle(timeout=60)
            app_db = app.app_database
            assert app_db is not None
            with app_db.engine.connect() as conn:
                status = dict(conn.execute(sa.text("SELECT id, status FROM jobs")).all())
                outputs = conn.execute(
                    sa.select(app_db.outputs.c.workflow_id, app_db.outputs.c.step_number)
                ).all()
            assert status == {1: "finished", 2: "dead"}
            assert sorted(handled) == [1, 2, 2]
            # begin and done of row 1 (and begin, attempt_failed x2 of row 2) are
            # transactions on the app database: each left its outputs row there
            assert {w for w, _ in outputs} == {"jobs:1", "jobs:2"}
            assert len([1 for w, _ in outputs if w == "jobs:1"]) == 2
        finally:
            app.close()
            adapter.legacy.dispose()

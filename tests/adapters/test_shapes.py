"""Shadow and takeover of job tables without a status column (SQLite, PostgreSQL, MariaDB)."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from adapters.status_column import MappingError, StateColumns, StatusColumnAdapter
from toolkit import Durable, RetryPolicy

from .shapes import SHAPES, create, payload_of, read

FAST = RetryPolicy(max_attempts=2, initial_delay=0.05, backoff=1.0)


@pytest.mark.parametrize("shape_name", sorted(SHAPES))
def test_shadow_then_takeover(shape_name, legacy_url, tmp_path):
    shape = SHAPES[shape_name]
    create(legacy_url, shape, 5)
    before = read(legacy_url, shape)
    app = Durable(f"sqlite:///{tmp_path}/state.db", lease_timeout=2.0)
    calls: Counter[int] = Counter()
    seen: dict[int, Any] = {}

    def handler(row: dict[str, Any]) -> str:
        calls[row["id"]] += 1
        seen[row["id"]] = row["payload"]
        if row["payload"] == "broken" or (row["payload"] == "flaky" and calls[row["id"]] == 1):
            raise RuntimeError(f"{row['payload']} {row['id']}")
        return f"sent {row['id']}"

    adapter = StatusColumnAdapter(app, legacy_url, handler=handler, retry=FAST, **shape.kwargs())
    try:
        report = adapter.shadow()
        assert report.would_start == [1, 2, 3, 4, 5]
        assert list(report.counts.values()) == [5]  # all pending
        assert "mapping: table" in str(report) and "state in" in str(report)
        assert read(legacy_url, shape) == before  # shadow changed nothing
        assert app._storage is None

        with adapter.takeover(poll_interval=0.1) as takeover:
            assert takeover.wait_idle(timeout=60)
        after = read(legacy_url, shape)
        for i in range(1, 6):
            assert shape.final(i, after.get(i)), (i, after.get(i))
        assert calls == {1: 1, 2: 1, 3: 2, 4: 2, 5: 1}
        assert seen == {i: payload_of(i) for i in range(1, 6)}
        statuses = {r.workflow_id: r.status for r in app.list_workflows(name=adapter.workflow_name)}
        assert statuses == {
            f"{shape.name}:{i}": ("failed" if i == 4 else "succeeded") for i in range(1, 6)
        }
        assert adapter.claim().started == []  # nothing runs twice
        assert adapter.shadow().would_start == []
    finally:
        adapter.legacy.dispose()
        app.close()


def test_state_columns_are_checked_up_front(legacy_url, tmp_path):
    engine = sa.create_engine(legacy_url.replace("postgresql://", "postgresql+psycopg://", 1))
    md = sa.MetaData()
    sa.Table(
        "jobs",
        md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("locked_at", sa.DateTime, nullable=False),
        sa.Column("processed", sa.Boolean, nullable=False),
    )
    md.create_all(engine)
    engine.dispose()
    app = Durable(f"sqlite:///{tmp_path}/state.db")
    try:
        for n, (state, expected) in enumerate([
            (StateColumns(taken="locked_at"), "taken column 'locked_at' is NOT NULL"),
            (StateColumns(taken="missing"), "has no taken column 'missing'"),
            (StateColumns(taken="processed", lease=timedelta(1)),
             "a lease column must hold a time"),
        ]):  # fmt: skip
            adapter = StatusColumnAdapter(
                app, legacy_url, table="jobs", key="id", status=state, handler=print, name=f"a{n}"
            )
            with pytest.raises(MappingError, match=expected) as caught:
                adapter.shadow()
            assert "\n" not in str(caught.value)
            adapter.legacy.dispose()
        with pytest.raises(ValueError, match="told apart from a pending"):
            StateColumns(delete="done")
        assert app._storage is None
    finally:
        app.close()

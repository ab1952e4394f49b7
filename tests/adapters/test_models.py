"""Job tables declared as Django or SQLAlchemy models, mapped from the model (3 databases)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from adapters.status_column import MappingError, StateColumns, StatusColumnAdapter, StatusValues
from toolkit import Durable, RetryPolicy

FAST = RetryPolicy(max_attempts=2, initial_delay=0.05, backoff=1.0)


# -- a SQLAlchemy declarative model, state in timestamps, attributes named unlike columns --


class Base(DeclarativeBase):
    pass


class Notification(Base):
    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=False)
    body: Mapped[str] = mapped_column(sa.String(100))
    claimed: Mapped[datetime | None] = mapped_column("claimed_at", sa.DateTime)
    sent: Mapped[datetime | None] = mapped_column("sent_at", sa.DateTime)
    gave_up: Mapped[datetime | None] = mapped_column("failed_at", sa.DateTime)
    tries: Mapped[int] = mapped_column("try_count", sa.Integer, default=0)
    error: Mapped[str | None] = mapped_column("error_text", sa.Text)


class Task(Base):
    __tablename__ = "tasks"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=False)
    body: Mapped[str] = mapped_column(sa.String(100))
    status: Mapped[str] = mapped_column(
        sa.Enum("todo", "doing", "succeeded", "failed", "cancelled", name="task_status")
    )
    attempts: Mapped[int] = mapped_column(sa.Integer, default=0)


def _engine(url: str) -> sa.Engine:
    return sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))


def _run(adapter: StatusColumnAdapter) -> None:
    with adapter.takeover(poll_interval=0.1) as takeover:
        assert takeover.wait_idle(timeout=60)


def _handler(row: dict[str, Any]) -> str:
    if row["body"] == "broken":
        raise RuntimeError("broken body")
    return "ok"


def test_sqlalchemy_models(legacy_url, tmp_path):
    engine = _engine(legacy_url)
    Base.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(
            sa.insert(Notification.__table__),
            [
                {"id": 1, "body": "hello", "try_count": 0},
                {"id": 2, "body": "broken", "try_count": 0},
            ],
        )
        conn.execute(
            sa.insert(Task.__table__),
            [{"id": 1, "body": "hello", "status": "todo", "attempts": 0}],
        )
    app = Durable(f"sqlite:///{tmp_path}/state.db")
    notes = StatusColumnAdapter.from_model(
        app,
        Notification,
        legacy_url,
        status=StateColumns(taken="claimed", done="sent", failed="gave_up"),  # attribute names
        handler=_handler,
        retry=FAST,
    )
    tasks = StatusColumnAdapter.from_model(app, Task.__table__, legacy_url, handler=_handler)
    try:
        assert notes.mapping == (
            "table 'notifications', key 'id', state in taken 'claimed_at', done 'sent_at', "
            "failed 'failed_at'; bookkeeping: attempts 'try_count', last_error 'error_text'"
        )
        assert tasks.mapping == (
            "table 'tasks', key 'id', status column 'status' (pending='todo', "
            "running='doing', done='succeeded', failed='failed'); bookkeeping: attempts 'attempts'"
        )
        assert tasks.legacy.status.other == ("cancelled",)
        _run(notes)
        _run(tasks)
        with engine.connect() as conn:
            rows = {r.id: r for r in conn.execute(sa.select(Notification.__table__))}
            task = conn.execute(sa.select(Task.__table__)).one()
        assert rows[1].sent_at is not None and rows[1].failed_at is None and rows[1].try_count == 1
        assert rows[2].failed_at is not None and rows[2].sent_at is None and rows[2].try_count == 2
        assert rows[2].error_text == "RuntimeError: broken body"
        assert (task.status, task.attempts) == ("succeeded", 1)
        with pytest.raises(MappingError, match=r"model Notification \(SQLAlchemy\) has no field"):
            StatusColumnAdapter.from_model(
                app, Notification, legacy_url, status=StateColumns(taken="nope"), handler=print
            )
    finally:
        notes.legacy.dispose()
        tasks.legacy.dispose()
        app.close()
        engine.dispose()


# -- a Django model (read through its _meta; no Django database is involved) ---------------


@pytest.fixture(scope="module")
def django_job() -> Iterator[Any]:
    django = pytest.importorskip("django")
    from django.conf import settings

    if not settings.configured:
        settings.configure(INSTALLED_APPS=[], USE_TZ=True)
    django.setup()
    from django.db import models

    class Job(models.Model):
        name = models.CharField(max_length=100)
        state = models.CharField(
            max_length=20,
            db_column="job_state",
            choices=[
                ("NEW", "New"),
                ("READY", "Ready"),
                ("PROCESSING", "Processing"),
                ("FAILED", "Failed"),
                ("COMPLETE", "Complete"),
            ],
        )
        workspace = models.JSONField(default=dict)
        retries = models.IntegerField(default=0, db_column="retry_count")
        last_error = models.TextField(null=True)
        locked_at = models.DateTimeField(null=True)

        class Meta:
            app_label = "legacy_jobs"
            db_table = "dbq_job"

    yield Job


def test_django_model(django_job, legacy_url, tmp_path):
    md = sa.MetaData()
    table = sa.Table(  # the table as the Django migration made it
        "dbq_job",
        md,
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("job_state", sa.String(20), nullable=False),
        sa.Column("workspace", sa.JSON, nullable=False),
        sa.Column("retry_count", sa.Integer, nullable=False),
        sa.Column("last_error", sa.Text),
        sa.Column("locked_at", sa.DateTime(timezone=True)),
    )
    engine = _engine(legacy_url)
    md.create_all(engine)
    with engine.begin() as conn:
        conn.execute(
            table.insert(),
            [
                {"id": i, "name": n, "job_state": "NEW", "workspace": {}, "retry_count": 0}
                for i, n in [(1, "report"), (2, "broken")]
            ],
        )
    app = Durable(f"sqlite:///{tmp_path}/state.db")
    seen: list[str] = []

    def run_job(row: dict[str, Any]) -> None:
        seen.append(row["name"])
        if row["name"] == "broken":
            raise ValueError("cannot build it")

    adapter = StatusColumnAdapter.from_model(
        app, django_job, legacy_url, handler=run_job, retry=FAST
    )
    try:
        assert adapter.mapping == (
            "table 'dbq_job', key 'id', status column 'job_state' (pending='NEW', "
            "running='PROCESSING', done='COMPLETE', failed='FAILED'); bookkeeping: "
            "attempts 'retry_count', last_error 'last_error', locked_at 'locked_at'"
        )
        assert adapter.legacy.status.other == ("READY",)
        _run(adapter)
        with engine.connect() as conn:
            rows = {r.id: r for r in conn.execute(sa.select(table))}
        assert (rows[1].job_state, rows[1].retry_count) == ("COMPLETE", 1)
        assert (rows[2].job_state, rows[2].retry_count) == ("FAILED", 2)
        assert rows[2].last_error == "ValueError: cannot build it"
        assert sorted(seen) == ["broken", "broken", "report"]
        bad = StatusValues(
            column="state", pending="NEW", running="RUNNING", done="COMPLETE", failed="FAILED"
        )
        with pytest.raises(MappingError, match=r"field 'state' allows .*not 'RUNNING'"):
            StatusColumnAdapter.from_model(app, django_job, legacy_url, status=bad, handler=print)
    finally:
        adapter.legacy.dispose()
        app.close()
        engine.dispose()

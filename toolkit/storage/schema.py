"""The system tables and their versioned migrations.

On PostgreSQL the tables live in their own schema (``durable``); SQLite has no
schemas, so there they carry a ``durable_`` prefix instead. Migrations are
plain functions run in order inside one transaction; each applied version is
recorded in the ``migrations`` table, so ``upgrade`` is idempotent and safe to
run from several processes at once (the caller serialises them with a lock).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import sqlalchemy as sa

if TYPE_CHECKING:  # alembic is imported only when a migration is missing (it is large)
    from alembic.operations import Operations

POSTGRES_SCHEMA = "durable"
SQLITE_PREFIX = "durable_"


@dataclass(frozen=True)
class Tables:
    """The system tables of one backend."""

    metadata: sa.MetaData
    workflows: sa.Table
    steps: sa.Table
    migrations: sa.Table
    schedules: sa.Table
    messages: sa.Table
    events: sa.Table


@dataclass(frozen=True)
class Names:
    """Where the system tables live on one backend."""

    schema: str | None
    prefix: str

    def table(self, name: str) -> str:
        return f"{self.prefix}{name}"


def build_tables(names: Names) -> Tables:
    """The current shape of the system tables (after every migration)."""
    md = sa.MetaData(schema=names.schema)
    workflows = sa.Table(
        names.table("workflows"),
        md,
        sa.Column("workflow_id", sa.Text, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("inputs", sa.Text),
        sa.Column("output", sa.Text),
        sa.Column("error", sa.Text),
        sa.Column("queue_name", sa.Text),
        sa.Column("priority", sa.Integer, nullable=False, server_default="0"),
        sa.Column("deduplication_id", sa.Text),
        sa.Column("not_before", sa.BigInteger),
        sa.Column("owner", sa.Text),
        sa.Column("lease_expires_at", sa.BigInteger),
        sa.Column("recoveries", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.Column("started_at", sa.BigInteger),
    )
    steps = sa.Table(
        names.table("steps"),
        md,
        sa.Column("workflow_id", sa.Text, primary_key=True),
        sa.Column("step_number", sa.Integer, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("output", sa.Text),
        sa.Column("error", sa.Text),
        sa.Column("started_at", sa.BigInteger, nullable=False),
        sa.Column("finished_at", sa.BigInteger),
        sa.Column("next_attempt_at", sa.BigInteger),
    )
    schedules = sa.Table(
        names.table("schedules"),
        md,
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("last_tick", sa.BigInteger, nullable=False),
    )
    messages = sa.Table(
        names.table("messages"),
        md,
        sa.Column(
            "message_id",
            sa.BigInteger().with_variant(sa.Integer, "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("workflow_id", sa.Text, nullable=False),
        sa.Column("topic", sa.Text, nullable=False),
        sa.Column("value", sa.Text),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    events = sa.Table(
        names.table("events"),
        md,
        sa.Column("workflow_id", sa.Text, primary_key=True),
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column("value", sa.Text),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
    )
    migrations = sa.Table(
        names.table("migrations"),
        md,
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("applied_at", sa.BigInteger, nullable=False),
    )
    return Tables(md, workflows, steps, migrations, schedules, messages, events)


Migration = Callable[["Operations", Names], None]


def _v1_core_tables(op: Operations, names: Names) -> None:
    op.create_table(
        names.table("workflows"),
        sa.Column("workflow_id", sa.Text, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("inputs", sa.Text),
        sa.Column("output", sa.Text),
        sa.Column("error", sa.Text),
        sa.Column("queue_name", sa.Text),
        sa.Column("priority", sa.Integer, nullable=False, server_default="0"),
        sa.Column("deduplication_id", sa.Text),
        sa.Column("not_before", sa.BigInteger),
        sa.Column("owner", sa.Text),
        sa.Column("lease_expires_at", sa.BigInteger),
        sa.Column("recoveries", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        schema=names.schema,
    )
    # Few indexes on the workflow row: the per-step lease and heartbeat updates
    # touch no indexed column, so PostgreSQL can update the row in place (HOT).
    op.create_index(
        names.table("workflows_status_created"),
        names.table("workflows"),
        ["status", "created_at"],
        schema=names.schema,
    )
    op.create_table(
        names.table("steps"),
        sa.Column("workflow_id", sa.Text, primary_key=True),
        sa.Column("step_number", sa.Integer, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("output", sa.Text),
        sa.Column("error", sa.Text),
        sa.Column("started_at", sa.BigInteger, nullable=False),
        sa.Column("finished_at", sa.BigInteger),
        sa.Column("next_attempt_at", sa.BigInteger),
        schema=names.schema,
    )


def _v2_queues_schedules_messages(op: Operations, names: Names) -> None:
    wf = names.table("workflows")
    op.add_column(wf, sa.Column("started_at", sa.BigInteger), schema=names.schema)
    # Claiming from a queue: runnable rows in priority order (partial: small, and
    # only status changes into and out of 'enqueued' touch it).
    enqueued = sa.text("status = 'enqueued'")
    op.create_index(
        names.table("workflows_queue_claim"),
        wf,
        ["queue_name", sa.text("priority DESC"), "created_at"],
        schema=names.schema,
        postgresql_where=enqueued,
        sqlite_where=enqueued,
    )
    live = sa.text("deduplication_id IS NOT NULL AND status IN ('enqueued', 'pending')")
    op.create_index(
        names.table("workflows_dedup"),
        wf,
        ["queue_name", "deduplication_id"],
        unique=True,
        schema=names.schema,
        postgresql_where=live,
        sqlite_where=live,
    )
    queued = sa.text("queue_name IS NOT NULL")
    op.create_index(
        names.table("workflows_queue_started"),
        wf,
        ["queue_name", "started_at"],
        schema=names.schema,
        postgresql_where=queued,
        sqlite_where=queued,
    )
    op.create_table(
        names.table("schedules"),
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("last_tick", sa.BigInteger, nullable=False),
        schema=names.schema,
    )
    op.create_table(
        names.table("messages"),
        sa.Column(
            "message_id",
            sa.BigInteger().with_variant(sa.Integer, "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("workflow_id", sa.Text, nullable=False),
        sa.Column("topic", sa.Text, nullable=False),
        sa.Column("value", sa.Text),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        schema=names.schema,
    )
    op.create_index(
        names.table("messages_inbox"),
        names.table("messages"),
        ["workflow_id", "topic", "message_id"],
        schema=names.schema,
    )
    op.create_table(
        names.table("events"),
        sa.Column("workflow_id", sa.Text, primary_key=True),
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column("value", sa.Text),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        schema=names.schema,
    )


MIGRATIONS: list[tuple[int, str, Migration]] = [
    (1, "workflows and steps", _v1_core_tables),
    (2, "queues, schedules, messages and events", _v2_queues_schedules_messages),
]
"""Every migration, in order. Append only: a released version never changes."""

LATEST_VERSION = MIGRATIONS[-1][0]


def upgrade(conn: sa.Connection, names: Names) -> list[int]:
    """Apply the migrations missing in this database; return the versions applied.

    Runs inside the caller's transaction, which must already hold the
    migration lock for this backend.
    """
    tables = build_tables(names)
    md, migrations = tables.metadata, tables.migrations
    if names.schema is not None:
        conn.execute(sa.schema.CreateSchema(names.schema, if_not_exists=True))
    md.create_all(conn, tables=[migrations])
    applied = set(conn.execute(sa.select(migrations.c.version)).scalars())
    missing = [m for m in MIGRATIONS if m[0] not in applied]
    if not missing:
        return []
    from alembic.migration import MigrationContext
    from alembic.operations import Operations

    ops = Operations(MigrationContext.configure(conn))
    done: list[int] = []
    for version, description, migrate in missing:
        migrate(ops, names)
        conn.execute(
            sa.insert(migrations).values(
                version=version, description=description, applied_at=int(time.time() * 1000)
            )
        )
        done.append(version)
    return done


def current_version(conn: sa.Connection, names: Names) -> int:
    """The highest applied migration version, 0 when the tables do not exist yet."""
    migrations = build_tables(names).migrations
    if not sa.inspect(conn).has_table(migrations.name, schema=names.schema):
        return 0
    return conn.execute(sa.select(sa.func.max(migrations.c.version))).scalar() or 0

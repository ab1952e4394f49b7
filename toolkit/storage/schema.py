"""The system tables and their versioned migrations.

On PostgreSQL the tables live in their own schema (``durable``); SQLite has no
schemas, so there they carry a ``durable_`` prefix instead. Migrations are
plain functions run in order inside one transaction; each applied version is
recorded in the ``migrations`` table, so ``upgrade`` is idempotent and safe to
run from several processes at once (the caller serialises them with a lock).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

if TYPE_CHECKING:  # alembic is imported only when a migration is missing (it is large)
    from alembic.operations import Operations

POSTGRES_SCHEMA = "durable"
SQLITE_PREFIX = "durable_"

_KEY_TYPE = sa.BigInteger().with_variant(sa.Integer, "sqlite")
"""Integer surrogate keys: BIGSERIAL on PostgreSQL, a rowid alias on SQLite."""


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
    meta: sa.Table
    workers: sa.Table


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
        # The surrogate key the steps refer to: 8 bytes per step row and index
        # entry instead of the workflow id's text (SQLite: the rowid).
        sa.Column("wf_key", _KEY_TYPE, primary_key=True, autoincrement=True),
        sa.Column("workflow_id", sa.Text, nullable=False, unique=True),
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
        sqlite_autoincrement=True,
    )
    steps = sa.Table(
        names.table("steps"),
        md,
        sa.Column("wf_key", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("step_number", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("started_at", sa.BigInteger, nullable=False),
        sa.Column("finished_at", sa.BigInteger),
        sa.Column("next_attempt_at", sa.BigInteger),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("output", sa.Text),
        sa.Column("error", sa.Text),
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
            _KEY_TYPE,
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
    meta = sa.Table(
        names.table("meta"),
        md,
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    workers = sa.Table(names.table("workers"), md, *_worker_columns())
    return Tables(md, workflows, steps, migrations, schedules, messages, events, meta, workers)


def _worker_columns() -> list[sa.Column[Any]]:
    return [
        sa.Column("owner", sa.Text, primary_key=True),
        sa.Column("host", sa.Text, nullable=False),
        sa.Column("pid", sa.Integer),
        sa.Column("queues", sa.Text, nullable=False),  # a JSON list of the queues it serves
        sa.Column("started_at", sa.BigInteger, nullable=False),
        sa.Column("last_seen_at", sa.BigInteger, nullable=False),
    ]


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
            _KEY_TYPE,
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


_V2_WORKFLOW_COLUMNS = (
    "workflow_id",
    "name",
    "status",
    "inputs",
    "output",
    "error",
    "queue_name",
    "priority",
    "deduplication_id",
    "not_before",
    "owner",
    "lease_expires_at",
    "recoveries",
    "created_at",
    "updated_at",
    "started_at",
)
_V2_STEP_COLUMNS = (
    "step_number",
    "started_at",
    "finished_at",
    "next_attempt_at",
    "attempts",
    "name",
    "status",
    "output",
    "error",
)


def _v3_integer_workflow_keys(op: Operations, names: Names) -> None:
    """Steps refer to their workflow by an integer key instead of its text id.

    Both tables are rebuilt (SQLite cannot change a primary key in place): the
    old ones are renamed, the new ones created and filled, the old dropped.
    Existing workflows get keys in creation order; step rows whose workflow
    no longer exists are not copied. Keys are never reused (SQLite:
    AUTOINCREMENT), so stray step rows can never attach to a new workflow.
    """
    schema_name, wf, st = names.schema, names.table("workflows"), names.table("steps")
    old_wf, old_st = names.table("workflows_v2"), names.table("steps_v2")
    op.rename_table(wf, old_wf, schema=schema_name)
    op.rename_table(st, old_st, schema=schema_name)
    new_wf = op.create_table(
        wf,
        sa.Column("wf_key", _KEY_TYPE, autoincrement=True),
        sa.Column("workflow_id", sa.Text, nullable=False),
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
        sa.PrimaryKeyConstraint("wf_key", name=names.table("workflows_pk")),
        sa.UniqueConstraint("workflow_id", name=names.table("workflows_workflow_id")),
        schema=schema_name,
        sqlite_autoincrement=True,  # never reuse a deleted workflow's key (as PostgreSQL)
    )
    # Fixed-width columns first: no alignment padding between them on PostgreSQL.
    new_st = op.create_table(
        st,
        sa.Column("wf_key", sa.BigInteger, nullable=False, autoincrement=False),
        sa.Column("step_number", sa.Integer, nullable=False, autoincrement=False),
        sa.Column("started_at", sa.BigInteger, nullable=False),
        sa.Column("finished_at", sa.BigInteger),
        sa.Column("next_attempt_at", sa.BigInteger),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("output", sa.Text),
        sa.Column("error", sa.Text),
        sa.PrimaryKeyConstraint("wf_key", "step_number", name=names.table("steps_pk")),
        schema=schema_name,
    )
    old_w = sa.table(old_wf, *(sa.column(c) for c in _V2_WORKFLOW_COLUMNS), schema=schema_name)
    old_s = sa.table(
        old_st,
        sa.column("workflow_id"),
        *(sa.column(c) for c in _V2_STEP_COLUMNS),
        schema=schema_name,
    )
    op.execute(
        sa.insert(new_wf).from_select(
            list(_V2_WORKFLOW_COLUMNS),
            sa.select(*(old_w.c[c] for c in _V2_WORKFLOW_COLUMNS)).order_by(
                old_w.c.created_at, old_w.c.workflow_id
            ),
        )
    )
    op.execute(
        sa.insert(new_st).from_select(
            ["wf_key", *_V2_STEP_COLUMNS],
            sa.select(new_wf.c.wf_key, *(old_s.c[c] for c in _V2_STEP_COLUMNS)).join_from(
                old_s, new_wf, new_wf.c.workflow_id == old_s.c.workflow_id
            ),
        )
    )
    op.drop_table(old_st, schema=schema_name)
    op.drop_table(old_wf, schema=schema_name)  # with its indexes: recreated below
    op.create_index(
        names.table("workflows_status_created"), wf, ["status", "created_at"], schema=schema_name
    )
    enqueued = sa.text("status = 'enqueued'")
    op.create_index(
        names.table("workflows_queue_claim"),
        wf,
        ["queue_name", sa.text("priority DESC"), "created_at"],
        schema=schema_name,
        postgresql_where=enqueued,
        sqlite_where=enqueued,
    )
    live = sa.text("deduplication_id IS NOT NULL AND status IN ('enqueued', 'pending')")
    op.create_index(
        names.table("workflows_dedup"),
        wf,
        ["queue_name", "deduplication_id"],
        unique=True,
        schema=schema_name,
        postgresql_where=live,
        sqlite_where=live,
    )
    queued = sa.text("queue_name IS NOT NULL")
    op.create_index(
        names.table("workflows_queue_started"),
        wf,
        ["queue_name", "started_at"],
        schema=schema_name,
        postgresql_where=queued,
        sqlite_where=queued,
    )


def _v4_store_identity(op: Operations, names: Names) -> None:
    """A key-value table of facts about this state store, first its random identity
    (``store_id``): an app database's outputs rows carry it, so two state stores
    that share one app database never read each other's outputs."""
    meta = op.create_table(
        names.table("meta"),
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
        schema=names.schema,
    )
    op.bulk_insert(meta, [{"key": "store_id", "value": uuid.uuid4().hex}])


def _v5_workers(op: Operations, names: Names) -> None:
    """One row per running worker process, written when it starts and at each of its
    passes, deleted when it stops: ``durable workers list`` shows idle workers too."""
    op.create_table(names.table("workers"), *_worker_columns(), schema=names.schema)


def _v6_queue_running_index(op: Operations, names: Names) -> None:
    """The running workflows of each queue, for a claim's global concurrency count.

    ``queue_name = ? AND status = 'pending'`` had no index of its own: the planner
    took ``(queue_name, started_at)`` (SQLite always, PostgreSQL when its statistics
    predate the finished rows) and read every workflow the queue ever ran, finished
    or not, on each claim. This partial index holds running queued workflows only,
    so the count reads those whatever the number of finished rows; direct runs
    (no queue) stay out of it, and lease and heartbeat updates still touch no
    indexed column.
    """
    running = sa.text("status = 'pending' AND queue_name IS NOT NULL")
    op.create_index(
        names.table("workflows_queue_running"),
        names.table("workflows"),
        ["queue_name"],
        schema=names.schema,
        postgresql_where=running,
        sqlite_where=running,
    )


MIGRATIONS: list[tuple[int, str, Migration]] = [
    (1, "workflows and steps", _v1_core_tables),
    (2, "queues, schedules, messages and events", _v2_queues_schedules_messages),
    (3, "integer workflow keys for steps", _v3_integer_workflow_keys),
    (4, "state store identity", _v4_store_identity),
    (5, "worker registry", _v5_workers),
    (6, "index of the running workflows of each queue", _v6_queue_running_index),
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

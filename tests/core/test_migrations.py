"""Upgrading a database that earlier versions wrote keeps every workflow and step."""

from __future__ import annotations

import json
import time

import sqlalchemy as sa
from alembic.migration import MigrationContext
from alembic.operations import Operations

from toolkit.storage import open_storage, schema


def _write_version_2(url: str) -> None:
    """Migrations 1 and 2 only, and rows as version 2 wrote them (steps keyed by text id)."""
    storage = open_storage(url)
    names = storage.names
    now = int(time.time() * 1000)
    with storage.engine.begin() as conn:
        if names.schema is not None:
            conn.execute(sa.schema.CreateSchema(names.schema))
        migrations = schema.build_tables(names).migrations
        migrations.create(conn)
        ops = Operations(MigrationContext.configure(conn))
        for version, description, migrate in schema.MIGRATIONS[:2]:
            migrate(ops, names)
            conn.execute(
                migrations.insert().values(version=version, description=description, applied_at=now)
            )
        workflows = sa.table(
            names.table("workflows"),
            *(sa.column(c) for c in ("workflow_id", "name", "status", "inputs", "error")),
            *(sa.column(c) for c in ("created_at", "updated_at", "started_at")),
            schema=names.schema,
        )
        steps = sa.table(
            names.table("steps"),
            *(sa.column(c) for c in ("workflow_id", "step_number", "name", "status", "attempts")),
            *(sa.column(c) for c in ("output", "error", "started_at", "finished_at")),
            schema=names.schema,
        )
        error = json.dumps({"type": "RuntimeError", "message": "provider down"})
        for i, wid in enumerate(["old-b", "old-a"]):  # created in this order
            conn.execute(
                workflows.insert().values(
                    workflow_id=wid,
                    name="migrated.charge",
                    status="failed",
                    inputs=json.dumps({"args": [10 * (i + 1)], "kwargs": {}}),
                    error=error,
                    created_at=now + i,
                    updated_at=now + i,
                    started_at=now + i,
                )
            )
            conn.execute(
                steps.insert(),
                [
                    {
                        "workflow_id": wid,
                        "step_number": 1,
                        "name": "migrated.reserve",
                        "status": "succeeded",
                        "attempts": 1,
                        "output": json.dumps(f"reservation-{wid}"),
                        "error": None,
                        "started_at": now,
                        "finished_at": now,
                    },
                    {
                        "workflow_id": wid,
                        "step_number": 2,
                        "name": "migrated.pay",
                        "status": "failed",
                        "attempts": 3,
                        "output": None,
                        "error": error,
                        "started_at": now,
                        "finished_at": now,
                    },
                ],
            )
    storage.dispose()


def test_version_2_database_upgrades_with_its_steps(make_app, db_url):
    _write_version_2(db_url)
    app = make_app()
    reserved: list[int] = []

    @app.step(name="migrated.reserve")
    def reserve(amount: int) -> str:
        reserved.append(amount)
        return f"new-reservation-{amount}"

    @app.step(name="migrated.pay")
    def pay(reservation: str) -> str:
        return f"paid {reservation}"

    @app.workflow(name="migrated.charge")
    def charge(amount: int) -> str:
        return pay(reserve(amount))

    assert app.upgrade() == list(range(3, schema.LATEST_VERSION + 1))
    assert app.storage.schema_version() == schema.LATEST_VERSION

    for wid in ("old-a", "old-b"):
        recorded = app.handle(wid).steps()
        assert [(s.step_number, s.name, s.status, s.attempts) for s in recorded] == [
            (1, "migrated.reserve", "succeeded", 1),
            (2, "migrated.pay", "failed", 3),
        ]
        assert recorded[1].error == {"type": "RuntimeError", "message": "provider down"}
        # Resumed on the new schema: the recorded step is replayed, the failed one runs.
        assert app.resume(wid).result(timeout=10) == f"paid reservation-{wid}"
    assert reserved == []

    # Keys were given in creation order; new workflows get keys after them.
    fresh = app.run(charge, 5)
    assert fresh == "paid new-reservation-5"
    w = app.storage.workflows
    with app.storage.engine.connect() as conn:
        order = conn.execute(sa.select(w.c.workflow_id).order_by(w.c.wf_key)).scalars().all()
    assert order[:2] == ["old-b", "old-a"] and len(order) == 3


def test_migrated_schema_matches_a_fresh_one(make_app, db_url):
    """Indexes and keys after the rebuild of version 3 are the ones the code expects."""
    _write_version_2(db_url)
    app = make_app()
    app.upgrade()
    inspector = sa.inspect(app.storage.engine)
    w, s = app.storage.workflows, app.storage.steps
    assert inspector.get_pk_constraint(w.name, schema=w.schema)["constrained_columns"] == ["wf_key"]
    assert inspector.get_pk_constraint(s.name, schema=s.schema)["constrained_columns"] == [
        "wf_key",
        "step_number",
    ]
    indexes = {ix["name"] for ix in inspector.get_indexes(w.name, schema=w.schema)}
    prefix = app.storage.names.prefix
    assert {
        f"{prefix}workflows_status_created",
        f"{prefix}workflows_queue_claim",
        f"{prefix}workflows_dedup",
        f"{prefix}workflows_queue_started",
        f"{prefix}workflows_queue_running",
    } <= indexes
    tables = set(inspector.get_table_names(schema=w.schema))
    assert not {t for t in tables if t.endswith("_v2")}, tables


def test_keys_are_never_reused(make_app):
    """Step rows left behind by a hand-written DELETE never attach to a new workflow."""
    app = make_app()

    @app.step(name="k.step")
    def one() -> int:
        return 1

    @app.workflow(name="k.flow")
    def flow() -> int:
        return one()

    app.run(flow, workflow_id="k-1")
    app.run(flow, workflow_id="k-2")
    w = app.storage.workflows
    with app.storage.engine.begin() as conn:
        conn.execute(sa.delete(w).where(w.c.workflow_id == "k-2"))  # its steps stay behind
    assert app.run(flow, workflow_id="k-3", timeout=10) == 1
    assert [s.step_number for s in app.list_steps("k-3")] == [1]


def test_every_state_store_has_its_own_identity(make_app, tmp_path):
    from toolkit import Durable

    first = make_app()
    first.upgrade()
    store_id = first.storage.store_id()
    assert len(store_id) == 32 and store_id == first.storage.store_id()
    other = Durable(f"sqlite:///{tmp_path}/other-state.db")
    try:
        assert other.storage.store_id() != store_id
    finally:
        other.close()

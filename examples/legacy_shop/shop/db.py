"""The shop's database: orders, the jobs table, and failed_jobs (the dead letters)."""

from __future__ import annotations

import os

import sqlalchemy as sa

metadata = sa.MetaData()

orders = sa.Table(
    "orders",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("customer_email", sa.String(200), nullable=False),
    sa.Column("amount_cents", sa.Integer, nullable=False),
    sa.Column("state", sa.String(20), nullable=False, server_default="new"),
    sa.Column("charge_id", sa.String(100)),
    sa.Column("tracking_number", sa.String(100)),
)

# The status-column job table, polled by shop.worker.
jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("kind", sa.String(50), nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("status", sa.String(20), nullable=False, server_default="pending"),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_error", sa.Text),
    sa.Column("next_retry_at", sa.DateTime),
    sa.Column("locked_by", sa.String(100)),
    sa.Column("locked_at", sa.DateTime),
    sa.Column("updated_at", sa.DateTime),
)

# Where jobs go when they run out of attempts. Someone is supposed to look.
failed_jobs = sa.Table(
    "failed_jobs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("job_id", sa.Integer, nullable=False),
    sa.Column("kind", sa.String(50), nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("error", sa.Text, nullable=False),
    sa.Column("failed_at", sa.DateTime, nullable=False),
)


def engine(url: str | None = None) -> sa.Engine:
    """The shop's engine: $SHOP_DATABASE_URL, else shop.db in the current folder."""
    return sa.create_engine(url or os.environ.get("SHOP_DATABASE_URL", "sqlite:///shop.db"))


def create_schema(eng: sa.Engine) -> None:
    metadata.create_all(eng)

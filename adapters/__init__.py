"""Adapters: absorb legacy retry patterns table by table (status columns, cron sweepers,
dead letters), each with a shadow mode that reports and a takeover mode that acts."""

from __future__ import annotations

from .cron_sweeper import CronSweeper, HeldRow, SweepReport
from .status_column import (
    ClaimReport,
    JsonKey,
    LegacyColumns,
    LegacyTable,
    MappingError,
    RowFailedError,
    RunningRow,
    ShadowReport,
    StateColumns,
    StatusColumnAdapter,
    StatusValues,
    Takeover,
    TakeoverStats,
)

__all__ = [
    "ClaimReport",
    "CronSweeper",
    "HeldRow",
    "JsonKey",
    "LegacyColumns",
    "LegacyTable",
    "MappingError",
    "RowFailedError",
    "RunningRow",
    "ShadowReport",
    "StateColumns",
    "StatusColumnAdapter",
    "StatusValues",
    "SweepReport",
    "Takeover",
    "TakeoverStats",
]

"""durable-toolkit: durable workflows, steps and transactions on SQLite and PostgreSQL.

``toolkit.workflow``, ``toolkit.step`` and ``toolkit.transaction`` are bound to
``toolkit.default_app``, configured from ``$DURABLE_DATABASE_URL`` (else the
SQLite file ``.durable/state.db``). It connects only when something needs the
database: a step called outside a workflow never does.
"""

from __future__ import annotations

from .app import Durable
from .engine import StepInfo, current_step, current_workflow_id
from .errors import (
    ConfigurationError,
    DatabaseUnavailableError,
    DeterminismError,
    DurableError,
    InvalidIdError,
    NotRegisteredError,
    RecoveryLimitError,
    RetriesExhausted,
    SerializationError,
    StepFailedError,
    TransactionConnectionLost,
    WorkflowCancelledError,
    WorkflowConflictError,
    WorkflowFailedError,
    WorkflowNotFoundError,
)
from .handle import WorkflowHandle
from .queues import Queue, Schedule
from .records import StepRecord, WorkflowRecord
from .retry import RetryPolicy, RetryState
from .serialization import JSONSerializer, Serializer
from .worker import Worker, WorkerStats

default_app = Durable()
"""The application behind the module-level decorators."""

workflow = default_app.workflow
step = default_app.step
transaction = default_app.transaction

__all__ = [
    "ConfigurationError",
    "DatabaseUnavailableError",
    "DeterminismError",
    "Durable",
    "DurableError",
    "InvalidIdError",
    "JSONSerializer",
    "NotRegisteredError",
    "Queue",
    "RecoveryLimitError",
    "RetriesExhausted",
    "RetryPolicy",
    "RetryState",
    "Schedule",
    "SerializationError",
    "Serializer",
    "StepFailedError",
    "StepInfo",
    "StepRecord",
    "TransactionConnectionLost",
    "Worker",
    "WorkerStats",
    "WorkflowCancelledError",
    "WorkflowConflictError",
    "WorkflowFailedError",
    "WorkflowHandle",
    "WorkflowNotFoundError",
    "WorkflowRecord",
    "current_step",
    "current_workflow_id",
    "default_app",
    "step",
    "transaction",
    "workflow",
]

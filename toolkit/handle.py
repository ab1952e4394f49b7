"""Handles on workflows, started here or elsewhere."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .records import StepRecord, WorkflowRecord

if TYPE_CHECKING:
    from .app import Durable


class WorkflowHandle:
    """A reference to one workflow by id; cheap to create, reads the database when asked."""

    def __init__(self, app: Durable, workflow_id: str) -> None:
        self._app = app
        self.workflow_id = workflow_id

    def __repr__(self) -> str:
        return f"WorkflowHandle({self.workflow_id!r})"

    def status(self) -> str:
        """The current status: enqueued, pending, succeeded, failed or cancelled."""
        return self._app.get_workflow(self.workflow_id).status

    def result(self, timeout: float | None = None) -> Any:
        """Wait for the workflow to end and return its result.

        Raises :class:`~toolkit.errors.WorkflowFailedError` (with the recorded
        error) if it failed, :class:`~toolkit.errors.WorkflowCancelledError` if it
        was cancelled, and :class:`TimeoutError` if ``timeout`` seconds pass first.
        """
        return self._app._wait(self.workflow_id, timeout)

    def record(self) -> WorkflowRecord:
        """The workflow's record as stored now."""
        return self._app.get_workflow(self.workflow_id)

    def steps(self) -> list[StepRecord]:
        """The workflow's recorded steps, in order."""
        return self._app.list_steps(self.workflow_id)

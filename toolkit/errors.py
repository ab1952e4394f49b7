"""Exceptions raised by durable-toolkit.

Every error the toolkit raises on purpose derives from :class:`DurableError`.
"""

from __future__ import annotations

import reprlib


class DurableError(Exception):
    """Base class of the toolkit's own errors."""


class ConfigurationError(DurableError):
    """The toolkit was configured wrongly (bad database URL, unsupported backend, ...)."""


class DatabaseUnavailableError(DurableError):
    """The database could not be reached or refused the connection."""


class SerializationError(DurableError):
    """A value could not be turned into JSON (or back) by the configured serializer."""


class DeterminismError(DurableError):
    """A workflow's code no longer matches what its recorded run did.

    Replay stopped at ``step_number`` because the code now calls ``current_name``
    where the recorded run called ``recorded_name``. Nothing recorded was changed.
    """

    def __init__(
        self, workflow_id: str, step_number: int, recorded_name: str, current_name: str
    ) -> None:
        self.workflow_id = workflow_id
        self.step_number = step_number
        self.recorded_name = recorded_name
        self.current_name = current_name
        super().__init__(
            f"workflow {workflow_id!r} changed under its recorded run: step {step_number} "
            f"was recorded as {recorded_name!r} but the code now calls {current_name!r}. "
            "Nothing recorded was overwritten; finish this run with the old code, or "
            "cancel it and start a new workflow."
        )


class WorkflowNotFoundError(DurableError):
    """No workflow with this id is recorded."""


class WorkflowConflictError(DurableError):
    """A workflow id is already used by a workflow of another name, or a resumed
    workflow's deduplication id is held by another live workflow of its queue."""


class NotRegisteredError(DurableError):
    """A workflow or step name is not registered in this application."""


class WorkflowFailedError(DurableError):
    """The workflow ended in ``failed``; the recorded error is attached."""

    def __init__(self, workflow_id: str, error: dict[str, str] | None) -> None:
        self.workflow_id = workflow_id
        self.error = error or {}
        self.error_type = self.error.get("type", "")
        self.error_message = self.error.get("message", "")
        super().__init__(
            f"workflow {workflow_id!r} failed: {self.error_type}: {self.error_message}"
        )


class WorkflowCancelledError(DurableError):
    """The workflow was cancelled before it finished."""

    def __init__(self, workflow_id: str) -> None:
        self.workflow_id = workflow_id
        super().__init__(f"workflow {workflow_id!r} was cancelled")


class RecoveryLimitError(DurableError):
    """A workflow's process died more than ``max_recoveries`` times while running it.

    Recorded as the error of a workflow that was failed instead of being taken
    over again (a poison workflow: one whose step crashes the process).
    """


class StepFailedError(DurableError):
    """Replay of a step whose recorded attempts ended in an exception.

    The original exception object is not stored (nothing is ever unpickled);
    builtin exception types are rebuilt, any other type is raised as this
    error carrying the recorded ``error_type`` and message.
    """

    def __init__(self, step_name: str, error_type: str, message: str) -> None:
        self.step_name = step_name
        self.error_type = error_type
        self.error_message = message
        super().__init__(f"step {step_name!r} failed: {error_type}: {message}")


class WorkflowInterrupted(BaseException):
    """Stops a workflow's code in this process: it was cancelled, or its lease was lost.

    Derives from BaseException so ``except Exception`` in workflow code does not
    swallow it. The workflow's durable state is left as it is.
    """


class RetriesExhausted(DurableError):
    """A step's returned value still matched ``retry_on_result`` after its last attempt
    (and its policy has no ``on_give_up``). ``attempts`` is how many ran;
    ``last_result`` the value the last one returned (not recorded when replayed)."""

    def __init__(self, step_name: str, attempts: int, last_result: object = None) -> None:
        self.step_name = step_name
        self.attempts = attempts
        self.last_result = last_result
        shortener = reprlib.Repr()
        shortener.maxstring = shortener.maxother = 80
        shown = " ".join(shortener.repr(last_result).split())
        super().__init__(
            f"step {step_name!r} gave up after {attempts} attempt{'s' if attempts != 1 else ''}: "
            f"retry_on_result still matched its result {shown}"
        )

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.step_name, self.attempts, self.last_result))


class InvalidIdError(DurableError, ValueError):
    """An id, deduplication id, topic or event key the database could not store as given
    (not a string, empty, a NUL character, a lone surrogate, or too long); refused
    before any SQL runs, on every backend alike."""


class TransactionConnectionLost(DurableError):
    """A ``@transaction`` lost its database connection several times in a row while the
    database answered other statements: the transaction itself is the cause (for
    example a value above MySQL's ``max_allowed_packet``), so its attempt fails
    instead of waiting for the database for ever."""

"""Traces and metrics through OpenTelemetry: an optional extra, off until enabled.

``pip install 'durable-toolkit[otel]'`` installs ``opentelemetry-api`` and
``-sdk``; :func:`enable` turns the instrumentation on for this process (with
the global providers, or the ones given). Nothing here imports OpenTelemetry
before :func:`enable` runs, and while it is off each hook on the hot path costs
one attribute read (``telemetry.active is None``).

**Traces.** One span per workflow run (``workflow <name>``), per step attempt
(``step <name>``) and per ``@transaction`` attempt (``transaction <name>``), with
the attributes ``durable.workflow.id``, ``durable.workflow.name``,
``durable.step.name``, ``durable.step.number``, ``durable.step.attempt``,
``durable.step.idempotency_key`` and ``durable.step.kind``. Every run of one
workflow (the first, a resume, a takeover by another worker after a crash)
belongs to **the same trace**, whose id is derived from the workflow id
(:func:`trace_id_of`): the run spans are children of a virtual root span
(:func:`root_span_id_of`) that no process records, so a trace viewer shows
them side by side, ``durable.workflow.replay`` telling the resumed ones. A run
started by ``app.start`` inside a span of the caller (an HTTP request, say)
carries a span link to it.

**Metrics** (meter ``durable-toolkit``): see :data:`METRICS`.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
import weakref
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from .errors import ConfigurationError

if TYPE_CHECKING:
    from .engine import Run, StepDef, _Attempt
    from .storage import Storage

METRICS: dict[str, str] = {
    "durable.workflow.runs": "runs started (attributes: name, durable.workflow.replay)",
    "durable.workflow.completions": "runs ended (status: succeeded, failed, interrupted)",
    "durable.workflow.duration": "seconds per run (histogram; status)",
    "durable.step.attempts": "step and transaction attempts (outcome: ok or error)",
    "durable.step.completions": "recorded step outcomes (status: succeeded, failed, retrying)",
    "durable.step.duration": "seconds per attempt (histogram; kind, outcome)",
    "durable.queue.latency": "seconds from enqueue (or due time) to a worker's claim (histogram)",
    "durable.queue.depth": "enqueued workflows per queue (gauge, read at collection)",
    "durable.queue.running": "running workflows per queue (gauge)",
    "durable.queue.oldest_age": "age in seconds of the oldest enqueued workflow (gauge)",
    "durable.recoveries": "workflows taken over from dead or expired owners",
    "durable.database.errors": "database errors (kind: unavailable or error)",
}
"""Every instrument, by name, with what it counts."""

INSTRUMENTATION = "durable-toolkit"

NO_SPAN = contextlib.nullcontext()
"""What the engine enters instead of a span while the instrumentation is off."""

active: _Telemetry | None = None
"""The instrumentation of this process, ``None`` while it is off (the hot path's one check)."""


def enable(tracer_provider: Any = None, meter_provider: Any = None) -> None:
    """Turn traces and metrics on for this process.

    ``tracer_provider`` and ``meter_provider`` default to OpenTelemetry's global
    ones (set by your own SDK setup, or by ``opentelemetry-instrument``).
    Raises :class:`~toolkit.errors.ConfigurationError` naming the extra when
    OpenTelemetry is not installed.
    """
    global active
    try:
        instrumentation = _Telemetry(tracer_provider, meter_provider)
    except ImportError as exc:
        raise ConfigurationError(
            "telemetry needs OpenTelemetry: pip install 'durable-toolkit[otel]' "
            f"({exc.name} is missing)"
        ) from None
    active = instrumentation


def disable() -> None:
    """Turn the instrumentation off again (spans already started still end)."""
    global active
    active = None


def trace_id_of(workflow_id: str) -> int:
    """The 128-bit trace id shared by every run of the workflow: the first 16 bytes of
    ``sha256("durable-toolkit:" + workflow_id)``."""
    digest = hashlib.sha256(f"durable-toolkit:{workflow_id}".encode()).digest()
    return int.from_bytes(digest[:16], "big") or 1


def root_span_id_of(workflow_id: str) -> int:
    """The 64-bit id of the workflow's virtual root span (the next 8 bytes of that hash)."""
    digest = hashlib.sha256(f"durable-toolkit:{workflow_id}".encode()).digest()
    return int.from_bytes(digest[16:24], "big") or 1


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("durable-toolkit")
    except PackageNotFoundError:
        return "0"


class _Telemetry:
    """The tracer, the meter and the hooks the engine, worker and storage call."""

    def __init__(self, tracer_provider: Any, meter_provider: Any) -> None:
        from opentelemetry import metrics, trace

        self._trace = trace
        version = _version()
        tp = tracer_provider if tracer_provider is not None else trace.get_tracer_provider()
        mp = meter_provider if meter_provider is not None else metrics.get_meter_provider()
        self.tracer = tp.get_tracer(INSTRUMENTATION, version)
        meter = mp.get_meter(INSTRUMENTATION, version)
        self.runs = meter.create_counter("durable.workflow.runs", "{run}", "workflow runs started")
        self.run_ends = meter.create_counter(
            "durable.workflow.completions", "{run}", "workflow runs ended, by status"
        )
        self.run_seconds = meter.create_histogram(
            "durable.workflow.duration", "s", "duration of a workflow run"
        )
        self.attempts = meter.create_counter(
            "durable.step.attempts", "{attempt}", "step and transaction attempts"
        )
        self.outcomes = meter.create_counter(
            "durable.step.completions", "{step}", "recorded step outcomes, by status"
        )
        self.step_seconds = meter.create_histogram(
            "durable.step.duration", "s", "duration of a step or transaction attempt"
        )
        self.queue_lag = meter.create_histogram(
            "durable.queue.latency", "s", "time from enqueue (or due time) to claim"
        )
        self.recoveries = meter.create_counter(
            "durable.recoveries", "{workflow}", "workflows taken over from dead owners"
        )
        self.db_errors = meter.create_counter(
            "durable.database.errors", "{error}", "database errors seen by this process"
        )
        self._watched: weakref.WeakSet[Storage] = weakref.WeakSet()
        self._queue_rows: list[dict[str, Any]] = []
        self._queue_read_at = -1.0
        meter.create_observable_gauge(
            "durable.queue.depth", [self._observe("enqueued")], "{workflow}", "enqueued workflows"
        )
        meter.create_observable_gauge(
            "durable.queue.running", [self._observe("running")], "{workflow}", "running workflows"
        )
        meter.create_observable_gauge(
            "durable.queue.oldest_age",
            [self._observe("age")],
            "s",
            "age of the oldest enqueued workflow",
        )

    # -- workflow runs --

    def remember_caller(self, run: Run) -> None:
        """Called where a run is launched: keep the caller's span (if any) for a link."""
        context = self._trace.get_current_span().get_span_context()
        if context.is_valid:
            run.__dict__["_otel_caller"] = context

    def run_started(self, run: Run) -> tuple[Any, Any, float]:
        """Open the run's span as the current one of its thread; see :meth:`run_ended`."""
        from opentelemetry import context as otel_context
        from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, TraceFlags

        trace = self._trace
        replay = bool(run.recorded)
        root = NonRecordingSpan(
            SpanContext(
                trace_id_of(run.workflow_id),
                root_span_id_of(run.workflow_id),
                is_remote=True,
                trace_flags=TraceFlags(TraceFlags.SAMPLED),
            )
        )
        caller = run.__dict__.get("_otel_caller")
        span = self.tracer.start_span(
            f"workflow {run.name}",
            context=trace.set_span_in_context(root),
            links=[Link(caller)] if caller is not None else None,
            attributes={
                "durable.workflow.id": run.workflow_id,
                "durable.workflow.name": run.name,
                "durable.workflow.replay": replay,
                "durable.workflow.recorded_steps": len(run.recorded),
            },
        )
        token = otel_context.attach(trace.set_span_in_context(span))
        self.runs.add(1, {"durable.workflow.name": run.name, "durable.workflow.replay": replay})
        return span, token, time.perf_counter()

    def run_ended(self, handle: tuple[Any, Any, float], run: Run) -> None:
        from opentelemetry import context as otel_context
        from opentelemetry.trace import StatusCode

        span, token, started = handle
        status = run.outcome.status if run.outcome is not None else "interrupted"
        span.set_attribute("durable.workflow.status", status)
        if status == "failed":
            error = (run.outcome.error if run.outcome is not None else None) or {}
            span.set_status(StatusCode.ERROR, f"{error.get('type')}: {error.get('message')}")
        span.end()
        otel_context.detach(token)
        attrs = {"durable.workflow.name": run.name, "durable.workflow.status": status}
        self.run_ends.add(1, attrs)
        self.run_seconds.record(time.perf_counter() - started, attrs)

    # -- steps and transactions --

    def _step_attributes(self, run: Run, step: StepDef, state: _Attempt) -> dict[str, Any]:
        number = state.number
        return {
            "durable.workflow.id": run.workflow_id,
            "durable.workflow.name": run.name,
            "durable.step.name": step.name,
            "durable.step.number": number,
            "durable.step.attempt": state.attempt,
            "durable.step.idempotency_key": f"{run.workflow_id}:{number}",
            "durable.step.kind": step.kind,
        }

    def _attempt(self, step: StepDef, outcome: str, started: float) -> None:
        attrs = {"durable.step.name": step.name, "durable.step.kind": step.kind}
        self.attempts.add(1, {**attrs, "durable.step.outcome": outcome})
        self.step_seconds.record(
            time.perf_counter() - started, {**attrs, "durable.step.outcome": outcome}
        )

    def call_step(
        self,
        run: Run,
        step: StepDef,
        state: _Attempt,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        """Run one attempt of a sync step inside its span."""
        attrs = self._step_attributes(run, step, state)
        started = time.perf_counter()
        with self.tracer.start_as_current_span(f"step {step.name}", attributes=attrs):
            try:
                result = step.fn(*args, **kwargs)
            except BaseException:
                self._attempt(step, "error", started)
                raise
        self._attempt(step, "ok", started)
        return result

    async def call_step_async(
        self,
        run: Run,
        step: StepDef,
        state: _Attempt,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        """Run one attempt of an ``async def`` step inside its span."""
        attrs = self._step_attributes(run, step, state)
        started = time.perf_counter()
        with self.tracer.start_as_current_span(f"step {step.name}", attributes=attrs):
            try:
                result = await step.fn(*args, **kwargs)
            except BaseException:
                self._attempt(step, "error", started)
                raise
        self._attempt(step, "ok", started)
        return result

    def transaction_span(self, run: Run, step: StepDef, state: _Attempt) -> Any:
        """A context manager around one transaction attempt (body, checkpoint and commit)."""

        @contextlib.contextmanager
        def span() -> Iterator[None]:
            attrs = self._step_attributes(run, step, state)
            started = time.perf_counter()
            with self.tracer.start_as_current_span(f"transaction {step.name}", attributes=attrs):
                try:
                    yield
                except BaseException:
                    self._attempt(step, "error", started)
                    raise
            self._attempt(step, "ok", started)

        return span()

    def step_outcome(self, name: str, status: str) -> None:
        """A step outcome about to be recorded: succeeded, failed or retrying."""
        self.outcomes.add(1, {"durable.step.name": name, "durable.step.status": status})

    # -- workers, queues, the database --

    def claimed(self, queue: str, lag_seconds: float) -> None:
        self.queue_lag.record(lag_seconds, {"durable.queue": queue})

    def recovered(self, count: int) -> None:
        if count:
            self.recoveries.add(count)

    def database_error(self, backend: str, kind: str) -> None:
        self.db_errors.add(1, {"db.system": backend.lower(), "durable.error.kind": kind})

    def watch_queues(self, storage: Storage) -> None:
        """Report this database's queue depth, running count and oldest age as gauges."""
        self._watched.add(storage)

    def unwatch_queues(self, storage: Storage) -> None:
        self._watched.discard(storage)

    def _queue_stats(self) -> list[dict[str, Any]]:
        """One read per collection for the three gauges (cached for a second)."""
        now = time.monotonic()
        if now - self._queue_read_at < 1.0:
            return self._queue_rows
        rows: list[dict[str, Any]] = []
        for storage in list(self._watched):
            try:
                stats = storage.queue_stats()
            except Exception:  # an outage: report nothing rather than fail the export
                continue
            rows.extend(stats)
        self._queue_rows, self._queue_read_at = rows, now
        return rows

    def _observe(self, what: str) -> Callable[[Any], Iterator[Any]]:
        from datetime import UTC, datetime

        from opentelemetry.metrics import Observation

        def callback(_options: Any) -> Iterator[Any]:
            now = datetime.now(UTC)
            for row in self._queue_stats():
                attrs = {"durable.queue": row["queue"]}
                if what == "age":
                    oldest = row["oldest"]
                    age = (now - oldest).total_seconds() if oldest is not None else 0.0
                    yield Observation(max(age, 0.0), attrs)
                else:
                    yield Observation(row[what], attrs)

        return callback

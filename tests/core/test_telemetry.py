"""OpenTelemetry traces and metrics, and the worker's JSON log lines.

Spans and metrics are read back with the OpenTelemetry SDK's own in-memory
exporter and reader (the real SDK, no mocks). The extra is optional: a
subprocess checks that ``import toolkit`` and a workflow run import no
``opentelemetry`` module while telemetry is off, or when it is not installed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from toolkit import Durable, RetryPolicy, Worker, WorkflowFailedError, telemetry
from toolkit.errors import ConfigurationError, DatabaseUnavailableError

otel_sdk = pytest.importorskip("opentelemetry.sdk.trace")
from opentelemetry.sdk.metrics import MeterProvider  # noqa: E402
from opentelemetry.sdk.metrics.export import InMemoryMetricReader  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (  # noqa: E402
    InMemorySpanExporter,
)

ROOT = Path(__file__).resolve().parents[2]


class Otel:
    """The SDK wired to in-memory exporters, with helpers to read them."""

    def __init__(self) -> None:
        self.spans = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])

    def finished(self, prefix: str = "") -> list[Any]:
        return [s for s in self.spans.get_finished_spans() if s.name.startswith(prefix)]

    def runs_of(self, workflow_id: str) -> list[Any]:
        return [
            s
            for s in self.finished("workflow ")
            if s.attributes["durable.workflow.id"] == workflow_id
        ]

    def metrics(self) -> dict[tuple[str, frozenset[tuple[str, Any]]], Any]:
        """Every data point: (name, attributes) -> value (a sum, a gauge, or a histogram count)."""
        points: dict[tuple[str, frozenset[tuple[str, Any]]], Any] = {}
        data = self.reader.get_metrics_data()
        for rm in data.resource_metrics if data else []:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    for p in metric.data.data_points:
                        value = p.count if hasattr(p, "bucket_counts") else p.value
                        points[(metric.name, frozenset(p.attributes.items()))] = value
        return points

    def total(self, name: str, **attrs: Any) -> Any:
        """The sum of a metric's points whose attributes include ``attrs``."""
        want = set(attrs.items())
        return sum(v for (n, a), v in self.metrics().items() if n == name and want <= set(a))


@pytest.fixture
def otel() -> Iterator[Otel]:
    found = Otel()
    telemetry.enable(found.tracer_provider, found.meter_provider)
    try:
        yield found
    finally:
        telemetry.disable()
        found.tracer_provider.shutdown()
        found.meter_provider.shutdown()


def test_spans_per_run_step_attempt_and_transaction(
    otel: Otel, make_app: Callable[..., Durable]
) -> None:
    app = make_app()
    with app.connection().begin() as conn:
        conn.execute(sa.text("CREATE TABLE paid (id TEXT)"))
    calls = {"n": 0}

    @app.step(name="charge", retry=RetryPolicy(max_attempts=3, initial_delay=0.01))
    def charge(order: str) -> str:
        calls["n"] += 1
        if calls["n"] == 1:
            raise ConnectionError("card network down")
        return f"charged {order}"

    @app.step(name="notify")
    async def notify(order: str) -> str:
        return f"notified {order}"

    @app.transaction(name="mark_paid")
    def mark_paid(conn: sa.Connection, order: str) -> None:
        conn.execute(sa.text("INSERT INTO paid VALUES (:o)"), {"o": order})

    @app.workflow(name="checkout")
    def checkout(order: str) -> str:
        charge(order)
        mark_paid(order)
        return order

    @app.workflow(name="async_checkout")
    async def async_checkout(order: str) -> str:
        return await notify(order)

    assert app.run(checkout, "o-1", workflow_id="wf-1", timeout=10) == "o-1"
    assert app.run(async_checkout, "o-2", workflow_id="wf-2", timeout=10) == "notified o-2"

    [run] = otel.runs_of("wf-1")
    assert run.name == "workflow checkout"
    assert run.context.trace_id == telemetry.trace_id_of("wf-1")
    assert run.parent.span_id == telemetry.root_span_id_of("wf-1")
    assert run.attributes["durable.workflow.status"] == "succeeded"
    assert run.attributes["durable.workflow.replay"] is False
    attempts = otel.finished("step charge")
    assert [s.attributes["durable.step.attempt"] for s in attempts] == [1, 2]
    for span in attempts:
        assert span.parent.span_id == run.context.span_id
        assert span.attributes["durable.step.number"] == 1
        assert span.attributes["durable.step.idempotency_key"] == "wf-1:1"
        assert span.attributes["durable.workflow.name"] == "checkout"
    assert attempts[0].status.status_code.name == "ERROR"
    assert attempts[0].events[0].name == "exception"
    [tx] = otel.finished("transaction mark_paid")
    assert tx.attributes["durable.step.kind"] == "transaction"
    assert tx.attributes["durable.step.idempotency_key"] == "wf-1:2"
    assert tx.parent.span_id == run.context.span_id
    [step2] = otel.finished("step notify")
    [run2] = otel.runs_of("wf-2")
    assert step2.parent.span_id == run2.context.span_id
    assert step2.context.trace_id == telemetry.trace_id_of("wf-2")

    assert otel.total("durable.workflow.runs", **{"durable.workflow.name": "checkout"}) == 1
    ended = {"durable.workflow.status": "succeeded"}
    assert otel.total("durable.workflow.completions", **ended) == 2
    assert otel.total("durable.step.attempts", **{"durable.step.outcome": "error"}) == 1
    assert otel.total("durable.step.attempts", **{"durable.step.outcome": "ok"}) == 3
    assert otel.total("durable.step.completions", **{"durable.step.status": "retrying"}) == 1
    assert otel.total("durable.step.completions", **{"durable.step.status": "succeeded"}) == 3
    assert otel.total("durable.step.duration", **{"durable.step.name": "charge"}) == 2
    assert otel.total("durable.workflow.duration") == 2


def test_failed_run_and_resume_share_one_trace(
    otel: Otel, make_app: Callable[..., Durable]
) -> None:
    app = make_app()
    state = {"fail": True}

    @app.step(name="reserve")
    def reserve() -> int:
        return 1

    @app.workflow(name="order")
    def order() -> int:
        reserve()
        if state["fail"]:
            raise RuntimeError("out of stock")
        return 2

    with pytest.raises(WorkflowFailedError):
        app.run(order, workflow_id="o-7", timeout=10)
    state["fail"] = False
    assert app.resume("o-7").result(timeout=10) == 2
    first, second = otel.finished("workflow order")
    assert first.context.trace_id == second.context.trace_id == telemetry.trace_id_of("o-7")
    assert first.status.status_code.name == "ERROR"
    assert first.attributes["durable.workflow.status"] == "failed"
    assert second.attributes["durable.workflow.replay"] is True
    assert second.attributes["durable.workflow.recorded_steps"] == 1
    assert len(otel.finished("step reserve")) == 1  # replayed, not run: no second span
    assert otel.total("durable.workflow.completions", **{"durable.workflow.status": "failed"}) == 1


def test_a_caller_span_is_linked(otel: Otel, make_app: Callable[..., Durable]) -> None:
    app = make_app()

    @app.workflow(name="job")
    def job() -> int:
        return 1

    tracer = otel.tracer_provider.get_tracer("web")
    with tracer.start_as_current_span("POST /orders") as request:
        app.start(job, workflow_id="j-1").result(timeout=10)
    [run] = otel.finished("workflow job")
    assert [link.context.span_id for link in run.links] == [request.get_span_context().span_id]
    assert run.context.trace_id != request.get_span_context().trace_id


CRASH_APP = """
import os, sys
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from toolkit import Durable, telemetry

app = Durable(sys.argv[1])
telemetry.enable(TracerProvider())


@app.step(name="first")
def first() -> int:
    return 1


@app.step(name="second")
def second() -> int:
    if os.environ.get("CRASH"):
        span = trace.get_current_span().get_span_context()
        print(f"{span.trace_id:032x}", flush=True)
        os._exit(1)
    return 2


@app.workflow(name="two_steps")
def two_steps() -> int:
    return first() + second()


if __name__ == "__main__":
    app.start(two_steps, workflow_id="crashy").result(timeout=30)
"""


def test_takeover_after_a_crash_continues_the_trace_and_counts_a_recovery(
    otel: Otel, db_url: str, tmp_path: Path
) -> None:
    script = tmp_path / "crash_app.py"
    script.write_text(CRASH_APP)
    env = {**os.environ, "CRASH": "1", "PYTHONPATH": str(ROOT)}
    child = subprocess.run(
        [sys.executable, str(script), db_url], env=env, capture_output=True, text=True, timeout=60
    )
    crashed_trace = child.stdout.strip()
    assert crashed_trace == f"{telemetry.trace_id_of('crashy'):032x}", child.stderr
    sys.path.insert(0, str(tmp_path))
    try:
        sys.argv = ["crash_app", db_url]
        import crash_app  # the same workflows, in this process
    finally:
        sys.path.remove(str(tmp_path))
    telemetry.enable(otel.tracer_provider, otel.meter_provider)  # the module enabled its own
    app = crash_app.app
    try:
        deadline = time.monotonic() + 30
        handles: list[Any] = []
        while not handles and time.monotonic() < deadline:  # until the dead session is seen
            handles = app.recover()
            time.sleep(0.1)
        [handle] = handles
        assert handle.result(timeout=10) == 3
    finally:
        app.close()
        sys.modules.pop("crash_app", None)
    [run] = otel.finished("workflow two_steps")
    assert f"{run.context.trace_id:032x}" == crashed_trace
    assert run.attributes["durable.workflow.replay"] is True
    assert [s.name for s in otel.finished("step ")] == ["step second"]
    assert otel.total("durable.recoveries") == 1


def test_queue_metrics_and_database_errors(otel: Otel, make_app: Callable[..., Durable]) -> None:
    app = make_app()
    jobs = app.queue("jobs")

    @app.workflow(name="job")
    def job(n: int) -> int:
        return n

    later = jobs.enqueue(job, 0, delay=60)  # stays enqueued: the depth gauge sees it
    worker = Worker(app).start()
    try:
        for handle in jobs.enqueue_many(job, [(i,) for i in range(5)]):
            handle.result(timeout=10)
        assert otel.total("durable.queue.latency", **{"durable.queue": "jobs"}) == 5
        assert otel.total("durable.queue.depth", **{"durable.queue": "jobs"}) == 1
        assert otel.total("durable.queue.oldest_age", **{"durable.queue": "jobs"}) >= 0
    finally:
        worker.stop()
    assert later.status() == "enqueued"
    down = Durable("postgresql://postgres@127.0.0.1:9/nothing")
    with pytest.raises(DatabaseUnavailableError):
        down.get_workflow("x")
    down.close()
    assert otel.total("durable.database.errors", **{"durable.error.kind": "unavailable"}) >= 1


NO_OTEL_RUN = """
import sys
{block}
import toolkit
from toolkit import Durable, telemetry

app = Durable(sys.argv[1])


@app.step(name="s")
def s() -> int:
    return 1


@app.workflow(name="w")
def w() -> int:
    return s()


assert app.run(w, workflow_id="w-1", timeout=10) == 1
app.close()
loaded = sorted(m for m in sys.modules if m.split(".")[0] == "opentelemetry")
print("loaded:", loaded)
try:
    telemetry.enable()
except toolkit.ConfigurationError as exc:
    print("enable:", exc)
"""

BLOCK_OTEL = """
import importlib.abc


class NoOpenTelemetry(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "opentelemetry":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, NoOpenTelemetry())
"""


@pytest.mark.parametrize("installed", [True, False], ids=["extra-installed", "extra-absent"])
def test_nothing_imports_opentelemetry_unless_enabled(tmp_path: Path, installed: bool) -> None:
    script = tmp_path / "run.py"
    script.write_text(NO_OTEL_RUN.format(block="" if installed else BLOCK_OTEL))
    out = subprocess.run(
        [sys.executable, str(script), f"sqlite:///{tmp_path}/state.db"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "loaded: []"
    if not installed:
        assert lines[1] == (
            "enable: telemetry needs OpenTelemetry: pip install 'durable-toolkit[otel]' "
            "(opentelemetry is missing)"
        )


def test_enable_without_the_extra_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry", None)  # as if not installed
    with pytest.raises(ConfigurationError, match=r"pip install 'durable-toolkit\[otel\]'"):
        telemetry.enable()
    assert telemetry.active is None


WORKER_APP = """
from toolkit import Durable, RetryPolicy

app = Durable()
jobs = app.queue("jobs")


@app.step(name="flaky", retry=RetryPolicy(max_attempts=2, initial_delay=0.01))
def flaky(n: int) -> int:
    raise ConnectionError(f"flaky {n}")


@app.workflow(name="job")
def job(n: int) -> int:
    return flaky(n)
"""


def test_worker_json_log_lines(tmp_path: Path) -> None:
    (tmp_path / "jobsapp.py").write_text(textwrap.dedent(WORKER_APP))
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DURABLE_DATABASE_URL": f"sqlite:///{tmp_path}/state.db",
    }
    enqueue = "import jobsapp; jobsapp.jobs.enqueue(jobsapp.job, 7, workflow_id='job-7')"
    subprocess.run([sys.executable, "-c", enqueue], cwd=tmp_path, env=env, check=True, timeout=60)
    worker = subprocess.Popen(
        [sys.executable, "-m", "toolkit", "worker", "--app", "jobsapp:app", "--log-format", "json"],
        cwd=tmp_path,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[dict[str, Any]] = []
    assert worker.stderr is not None
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = worker.stderr.readline()
            if not line:
                break
            lines.append(json.loads(line))  # every line is one JSON object
            if "finished job-7" in lines[-1]["message"]:
                break
    finally:
        worker.send_signal(signal.SIGTERM)
        rest = worker.communicate(timeout=30)[1]
    lines += [json.loads(line) for line in rest.splitlines()]
    for line in lines:
        assert list(line)[:4] == ["time", "level", "logger", "message"]
        assert line["time"].endswith("Z")
    [retry] = [x for x in lines if x["message"].startswith("step flaky of workflow job-7 failed")]
    assert retry["level"] == "WARNING" and retry["logger"] == "toolkit"
    assert (retry["workflow_id"], retry["workflow_name"]) == ("job-7", "job")
    assert (retry["step_name"], retry["step_number"], retry["attempt"]) == ("flaky", 1, 1)
    [failed] = [x for x in lines if x["message"].startswith("finished job-7")]
    assert failed["workflow_id"] == "job-7" and failed["error_type"] == "ConnectionError"
    assert any(x["message"].startswith("worker ") and "serving" in x["message"] for x in lines)
    assert worker.returncode == 0


def test_a_transaction_on_an_app_database_apart_has_its_span(otel: Otel, tmp_path: Path) -> None:
    app = Durable(f"sqlite:///{tmp_path}/state.db", app_database_url=f"sqlite:///{tmp_path}/app.db")
    app.upgrade()  # creates the outputs table in the app database
    with app.connection().begin() as conn:
        conn.execute(sa.text("CREATE TABLE ledger (label TEXT)"))

    @app.transaction(name="book")
    def book(conn: sa.Connection, label: str) -> str:
        conn.execute(sa.text("INSERT INTO ledger VALUES (:l)"), {"l": label})
        return label

    @app.workflow(name="booking")
    def booking() -> str:
        return book("a")

    try:
        assert app.run(booking, workflow_id="b-1", timeout=10) == "a"
    finally:
        app.close()
    [tx] = otel.finished("transaction book")
    assert tx.attributes["durable.step.idempotency_key"] == "b-1:1"
    assert tx.context.trace_id == telemetry.trace_id_of("b-1")

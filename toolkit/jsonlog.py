"""Log lines for machines: ``durable worker --log-format json``.

One JSON object per line, with at least ``time`` (ISO 8601, UTC, milliseconds),
``level``, ``logger`` and ``message`` (the formatted text); then the structured
fields of the record where there are some: ``workflow_id``, ``workflow_name``,
``step_name``, ``step_number``, ``attempt`` (stamped from the running workflow
and step when the line is logged inside one), anything a caller passed with
``extra=``, ``exception`` (the traceback text) and, while OpenTelemetry is
enabled and a span is current, ``trace_id`` and ``span_id``.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

from . import telemetry
from .engine import _run_var, _step_var

_STANDARD = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__.keys()
    | {"message", "asctime", "taskName"}
)
"""Attributes every LogRecord has: everything else on a record is a structured field."""

_FIRST = ("time", "level", "logger", "message")


class ContextFilter(logging.Filter):
    """Stamps the running workflow and step onto records logged inside them (in the
    logging thread, so that a formatter elsewhere still sees them)."""

    def filter(self, record: logging.LogRecord) -> bool:
        run = _run_var.get()
        if run is not None and not hasattr(record, "workflow_id"):
            record.workflow_id = run.workflow_id
            record.workflow_name = run.name
        step = _step_var.get()
        if step is not None and step.workflow_id is not None and not hasattr(record, "step_name"):
            record.step_name = step.name
            record.step_number = step.step_number
            record.attempt = step.attempt
        tel = telemetry.active
        if tel is not None and not hasattr(record, "trace_id"):
            context = tel._trace.get_current_span().get_span_context()
            if context.is_valid:
                record.trace_id = f"{context.trace_id:032x}"
                record.span_id = f"{context.span_id:016x}"
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line (see the module's docstring for the fields)."""

    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created, tz=UTC)
        line: dict[str, Any] = {
            "time": when.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_") and key not in line:
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        return json.dumps(line, default=str, ensure_ascii=False)


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(
    log_format: str = "text", *, verbose: bool = False, stream: TextIO | None = None
) -> logging.Handler:
    """The logging of ``durable worker``: INFO and up on stderr (``toolkit.worker`` at DEBUG
    with ``verbose``), as text lines or JSON lines (``log_format="json"``)."""
    if log_format not in ("text", "json"):
        raise ValueError(f"unknown log format {log_format!r}: expected text or json")
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.addFilter(ContextFilter())
    handler.setFormatter(
        JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
    )
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_durable_handler", False):
            root.removeHandler(old)
    handler._durable_handler = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    if verbose:
        logging.getLogger("toolkit.worker").setLevel(logging.DEBUG)
    return handler

"""Job tables, sweepers and dead letters declared in models, SQL and broker settings.

Model classes (SQLAlchemy, Django, Odoo), ``Table(...)``/``create_table``/``CreateModel``
calls, ``CREATE TABLE`` in SQL strings, sweepers written as bulk UPDATEs by age,
failure writes to a dead-letter table and broker dead-letter arguments. The
function-level shapes (claims, state moves, sweeper loops) are in :mod:`jobscan`.
"""

from __future__ import annotations

import ast
import re
from typing import TYPE_CHECKING

from codemods.audit.astutil import excerpt as _excerpt
from codemods.audit.effects import dotted
from codemods.audit.model import Fix, Hotspot, Kind, Risk
from codemods.audit.textscan import (
    LOCK_COLUMNS,
    STATUS_COLUMNS,
    TextFinding,
    classify_table,
    scan_broker_config,
    scan_sql,
)

if TYPE_CHECKING:
    from codemods.audit.pyscan import PythonScanner

TIME_ATTR = re.compile(r"(_at|_on|time|timestamp|heartbeat|updated|modified|started|deadline)$")
GUARD_TEXT = re.compile(
    r"skip_locked|select_for_update|with_for_update|advisory|SKIP LOCKED|NOWAIT|"
    r"leader|acquire\(|\.lock\(",
    re.I,
)
_SQLISH = re.compile(r"\b(select|update|insert|create\s+table|delete\s+from)\b", re.I)
PERIODIC = re.compile(r"periodic|scheduled_job|cron|interval|every|beat", re.I)
_CREATE_TABLE_TEXT = re.compile(r"create\s+(?:\w+\s+)?table", re.I)
_TABLE_CALL = ("Table(", "create_table(", "CreateModel(")
_DJANGO_AGE = re.compile(r"(_at|_on|time|timestamp|heartbeat|updated|modified|started)__lte?\b")


def scan_sweeper(
    sc: PythonScanner, func: ast.FunctionDef | ast.AsyncFunctionDef, qual: str
) -> None:
    how = None
    for n in sc.local_nodes(func):
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute):
            attr = n.func.attr
            chain = ast.unparse(n.func.value) if attr in ("update", "values") else ""
            if (
                attr == "update"
                and any(k.arg in STATUS_COLUMNS for k in n.keywords)
                and _DJANGO_AGE.search(chain)
            ):
                how = "Django UPDATE of status filtered by age"
            if attr == "values" and any(k.arg in STATUS_COLUMNS for k in n.keywords):  # noqa: SIM102
                if any(
                    isinstance(c, ast.Compare)
                    and any(isinstance(o, ast.Lt | ast.LtE) for o in c.ops)
                    and isinstance(c.left, ast.Attribute)
                    and TIME_ATTR.search(c.left.attr)
                    for c in ast.walk(n.func.value)
                ):
                    how = "SQLAlchemy UPDATE of status filtered by age"
            if attr == "update" and n.args and isinstance(n.args[0], ast.Dict):
                keys = {k.value for k in n.args[0].keys if isinstance(k, ast.Constant)}
                keys |= {k.attr for k in n.args[0].keys if isinstance(k, ast.Attribute)}
                if keys & STATUS_COLUMNS and any(
                    isinstance(c, ast.Compare)
                    and any(isinstance(o, ast.Lt | ast.LtE) for o in c.ops)
                    and isinstance(c.left, ast.Attribute)
                    and TIME_ATTR.search(c.left.attr)
                    for c in ast.walk(n.func.value)
                ):
                    how = "SQLAlchemy query UPDATE of status filtered by age"
        elif (
            isinstance(n, ast.Constant)
            and isinstance(n.value, str)
            and len(n.value) > 20
            and "update" in n.value.lower()
            and any(f.what == "sweeper-sql" and f.name == "UPDATE" for f in scan_sql(n.value))
        ):
            how = "SQL UPDATE of status filtered by age or failure"
        if how:
            break
    if not how:
        return
    src = ast.get_source_segment(sc.text, func) or ""
    guarded = GUARD_TEXT.search(src) is not None
    trigger = sc.triggers.get(func.name)
    if trigger is None and sc.is_command and func.name == "handle":
        trigger = "management command"
    if trigger is None:
        for dec in func.decorator_list:
            if PERIODIC.search(sc.resolve(dec)):
                trigger = f"@{dotted(dec.func if isinstance(dec, ast.Call) else dec)}"
    run_by = f" ({trigger})" if trigger else ""
    if guarded:
        risk = Risk.MEDIUM
        reason = f"requeues rows by age under a lock{run_by}: recovery by time guesses"
    else:
        risk = Risk.HIGH
        reason = f"requeues rows by age with no lock or lease{run_by}: can run a job twice"
    sc.sweepers_seen.add(func.name)
    sc.add(
        Kind.CRON_SWEEPER,
        how,
        func.lineno,
        func.end_lineno or func.lineno,
        qual,
        risk,
        reason,
        Fix(
            "adapter",
            "cron-sweeper",
            False,
            "scheduled durable workflow; leases recover stuck work",
        ),
    )


def scan_dead_letter_code(
    sc: PythonScanner, func: ast.FunctionDef | ast.AsyncFunctionDef, qual: str
) -> None:
    body = list(func.body)
    target = None
    for n in sc.local_nodes(func):
        if isinstance(n, ast.Call):
            name = dotted(n.func)
            parts = name.split(".")
            if (
                len(parts) >= 3
                and parts[-2] == "objects"
                and parts[-1] in ("create", "bulk_create")
            ):
                found = classify_table(parts[-3], ["error"])
                if found and found.what == "dead-letter-table":
                    target = parts[-3]
            elif parts[-1] in ("add", "insert") and n.args and isinstance(n.args[0], ast.Call):
                cls = dotted(n.args[0].func).rsplit(".", 1)[-1]
                found = classify_table(cls, ["error"])
                if found and found.what == "dead-letter-table":
                    target = cls
        elif (
            isinstance(n, ast.Constant)
            and isinstance(n.value, str)
            and len(n.value) > 12
            and "insert" in n.value.lower()
        ):
            for f in scan_sql(n.value):
                if f.what == "dead-letter-insert":
                    target = f.name
        if target:
            break
    if not target and func.name in (
        "on_failure",
        "on_retry_exhausted",
        "after_retries_exhausted",
    ):
        effects = sc.effects(body)
        if effects.db_write or effects.external:
            target = "a failure store"
    if not target:
        return
    sc.add(
        Kind.DEAD_LETTER,
        "failure written to a table" if target != "a failure store" else f"{func.name} hook",
        func.lineno,
        func.end_lineno or func.lineno,
        qual,
        Risk.MEDIUM,
        f"writes failed work to {target}: re-running a row repeats every side effect",
        Fix("adapter", "dead-letter", False, "failed workflows you can inspect and retry"),
    )


def report_table(
    sc: PythonScanner, finding: TextFinding, start: int, end: int, pattern: str
) -> None:
    if finding.what == "dead-letter-table":
        sc.add(
            Kind.DEAD_LETTER,
            pattern,
            start,
            end,
            None,
            Risk.LOW,
            f"failed jobs parked in `{finding.name}`: retried by hand, outside any workflow",
            Fix("adapter", "dead-letter", False, "import rows as failed workflows"),
        )
        return
    cols = set(finding.detail)
    locks = sorted(cols & LOCK_COLUMNS)
    book = ", ".join(c for c in finding.detail if c not in STATUS_COLUMNS)
    if locks:
        reason = f"job table `{finding.name}` with time-based locks ({', '.join(locks)}): " \
                 "stuck rows need a sweeper"  # fmt: skip
    else:
        reason = f"job state in a status column with hand-rolled retry bookkeeping ({book})"
    sc.add(
        Kind.STATUS_TABLE,
        pattern,
        start,
        end,
        None,
        Risk.MEDIUM,
        reason,
        Fix("adapter", "status-column", False, "each row becomes a durable workflow"),
    )


def scan_model(sc: PythonScanner, cls: ast.ClassDef, qual: str) -> bool:
    """Report a model class that is a job or dead-letter table; True when reported."""
    bases = [dotted(b) for b in cls.bases]
    tablename = None
    columns: list[str] = []
    for stmt in cls.body:
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
            target = stmt.targets[0]
            if isinstance(target, ast.Name):
                if target.id in ("__tablename__", "_name") and isinstance(stmt.value, ast.Constant):
                    tablename = str(stmt.value.value)
                elif isinstance(stmt.value, ast.Call):
                    columns.append(target.id)
        elif (
            isinstance(stmt, ast.AnnAssign)
            and isinstance(stmt.target, ast.Name)
            and (stmt.value is not None or "Mapped" in ast.unparse(stmt.annotation))
        ):
            columns.append(stmt.target.id)
    django = any(b.endswith("Model") for b in bases)
    if not (tablename or django):
        return False
    finding = classify_table(tablename or cls.name, columns) or (
        classify_table(cls.name, columns) if tablename else None
    )
    if not finding:
        return False
    kind = "Django model" if django else "SQLAlchemy model"
    if finding.what == "status-table":
        sc.job_classes.add(cls.name)
    report_table(sc, finding, cls.lineno, cls.end_lineno or cls.lineno, kind)
    return True


def scan_table_calls(sc: PythonScanner) -> None:
    if not any(lit in sc.text for lit in _TABLE_CALL):
        return
    for n in sc.nodes:
        if not isinstance(n, ast.Call):
            continue
        last = dotted(n.func).rsplit(".", 1)[-1]
        if last in ("Table", "create_table") and n.args and isinstance(n.args[0], ast.Constant):
            cols = [
                a.args[0].value
                for a in n.args[1:]
                if isinstance(a, ast.Call)
                and a.args
                and isinstance(a.args[0], ast.Constant)
                and isinstance(a.args[0].value, str)
            ]
            finding = classify_table(str(n.args[0].value), cols)
            if finding:
                pattern = "Alembic create_table" if last == "create_table" else "SQLAlchemy Table"
                report_table(sc, finding, n.lineno, n.end_lineno or n.lineno, pattern)
        elif last == "CreateModel":
            kw = {k.arg: k.value for k in n.keywords}
            name = kw.get("name")
            fields = kw.get("fields")
            if isinstance(name, ast.Constant) and isinstance(fields, ast.List | ast.Tuple):
                cols = [
                    str(e.elts[0].value)
                    for e in fields.elts
                    if isinstance(e, ast.Tuple) and e.elts and isinstance(e.elts[0], ast.Constant)
                ]
                finding = classify_table(str(name.value), cols)
                if finding:
                    report_table(sc, finding, n.lineno, n.end_lineno or n.lineno,
                                       "Django migration CreateModel")  # fmt: skip


def scan_strings(sc: PythonScanner) -> None:
    for n in sc.nodes if _CREATE_TABLE_TEXT.search(sc.text) else ():
        if (
            isinstance(n, ast.Constant)
            and isinstance(n.value, str)
            and len(n.value) > 20
            and "create" in n.value.lower()
            and _SQLISH.search(n.value)
        ):
            for f in scan_sql(n.value):
                if f.what in ("status-table", "dead-letter-table"):
                    start = n.lineno + f.start_line - 1
                    end = min(n.lineno + f.end_line - 1, n.end_lineno or n.lineno)
                    report_table(sc, f, start, end, "SQL CREATE TABLE")
    if not any(
        lit in sc.text
        for lit in ("x-dead-letter", "edrive", "deadLetterTargetArn", "dead_letter_queue")
    ):
        return
    for f in scan_broker_config(sc.text):
        sc.add(*_broker_hotspot_args(f))


def _broker_hotspot_args(f: TextFinding) -> tuple[Kind, str, int, int, None, Risk, str, Fix]:
    if f.what == "dlx":
        return (
            Kind.DEAD_LETTER,
            "RabbitMQ dead-letter exchange",
            f.start_line,
            f.end_line,
            None,
            Risk.LOW,
            "messages that exhaust broker retries go to a dead-letter exchange",
            Fix("adapter", "dead-letter", False, "import the DLQ as failed workflows"),
        )
    return (
        Kind.DEAD_LETTER,
        "SQS redrive policy",
        f.start_line,
        f.end_line,
        None,
        Risk.LOW,
        "messages that exhaust receives move to a dead-letter queue",
        Fix("adapter", "dead-letter", False, "import the DLQ as failed workflows"),
    )


def broker_hotspot(path: str, lines: list[str], f: TextFinding) -> Hotspot:
    """A dead-letter hotspot for a broker configuration finding in any text file."""
    kind, pattern, start, end, function, risk, reason, fix = _broker_hotspot_args(f)
    return Hotspot(kind, pattern, path, start, end, function, _excerpt(lines, start, end),
                   risk, reason, fix)  # fmt: skip

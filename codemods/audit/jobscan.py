"""Job-table code, sweepers and dead-letter code, read one function at a time.

The shapes (from real projects): a sweeper selects rows by status or age and
requeues, fails or deletes them (ORM loops, two-step batches, bulk updates,
periodic tasks, management commands); job-table code claims rows
(``select_for_update``, ``FOR UPDATE SKIP LOCKED``, compare-and-swap
updates), moves them through states, re-schedules them, or loops over them
as a worker; dead-letter code parks, lists, names or redrives failed work.

Each function gives at most one finding (the first of sweeper, dead letter,
job code that applies). Pure ``ast`` and regular expressions; the words are
evidence, the structure decides: a name alone never reports a function.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from codemods.audit.effects import dotted
from codemods.audit.model import Fix, Kind, Risk

if TYPE_CHECKING:
    from codemods.audit.pyscan import PythonScanner

Func = ast.FunctionDef | ast.AsyncFunctionDef

#: a cheap first look: functions whose lines hold none of these are skipped
HINT = re.compile(
    r"requeue|sweep|stuck|stale|expire|clean|purge|prune|orphan|reap|dead|dlq|nack|bur[yi]|"
    r"job|queue|worker|message|deliver|claim|for update|skip locked|heartbeat|lease|periodic|"
    r"deferred|redrive|failed_?(?:entr|job|task|message|deliver)|failure"
)


def wants(name: str) -> bool:
    """A function named like a sweeper or a failure handler is read whatever its words."""
    return SWEEP_NAME.search(name) is not None or _DEAD_NAME.match(name) is not None


SWEEP_NAME = re.compile(
    r"requeue|re_queue|sweep|stuck|stale|stalled|reap|rescue|recover|resubmit|redrive|"
    r"orphan|zombie|retry_(?:failed|stuck|deferred|pending|stalled)|reset_\w*(?:status|state|jobs|tasks)|"
    r"cleanup|clean_up|^_?clean_|expire|expired|prune|purge|garbage|timeouts$|_timeouts_|"
    r"pending_deletes|unconfirmed|abandoned|fail_if|release_funds|delete_old|remove_old",
    re.I,
)
_AGE = re.compile(
    r"timedelta|older|is_older_than|expire|stale|stuck|stalled|heartbeat|_before\b|cutoff|"
    r"timeout|deadline|utcnow\(\)\s*-|now\(\)\s*-|__lte?\b|\blast_seen|interval\b|_ttl\b|"
    r"updated_at\s*<|abandon|until\b|_delta\b",
    re.I,
)
_STATE_NAME = re.compile(r"^(?:\w+_)?(?:status|state)(?:es)?$|^(?:status|state)__\w+$", re.I)
_WRITE_CALLS = frozenset(
    {"save", "update", "delete", "write", "unlink", "requeue", "retry", "retry_job", "fail",
     "abort", "reset", "cancel", "bulk_update", "execute", "commit", "destroy", "set_failed",
     "set_pending", "set_enqueued", "set_done", "set_started", "process_event", "enqueue",
     "release", "finish", "finish_job", "defer", "postpone", "zrem", "move_to", "delete_many"}
)  # fmt: skip
_PERIODIC = re.compile(r"periodic|scheduled_job|\bcron\b|beat|every|interval", re.I)
_JOB_WORDS = re.compile(r"job|task|message|delivery|queue|mail|email|outbox|work", re.I)
_CLAIM = re.compile(
    r"select_for_update|with_for_update|for\s+update|skip[\s_]locked|nowait\s*=\s*true|\bdequeue|"
    r"fetch_job|"
    r"acquire_one|_pull_item|\bclaim|lock__lt|lock_until|leased?_until",
    re.I,
)
_RETRY_BOOK = re.compile(
    r"attempts?\b|retries\b|retry_count|retried|number_of_retries|retry_at|schedule_at|"
    r"scheduled_time|next_retry|run_after|execute_at|postpone|\beta\b|retry_job|retry_in",
    re.I,
)
_WORKER_CALL = re.compile(
    r"process_job|run_once|run_available|fetch_and_process|send_all|send_queued|dequeue|"
    r"fetch_job|process_next|work_once|handle_job|_process",
    re.I,
)
_DEAD_WORDS = re.compile(
    r"dead[\s_-]?letter|\bdlq\b|deadletter|\.xq\b|graveyard|\bbur(?:y|ied)\b|poison|"
    r"failed_?job|failedjobregistry|failed_registry|failure_ttl|cell0|redrive|"
    r"\bFailed(?:Entry|Task|Job|Message|Delivery)",
    re.I,
)
_DEAD_SUBSTRINGS = ("dead", "dlq", "letter", "failed", "bur", "poison", "redrive", "cell0", ".xq")
_DEAD_NAME = re.compile(
    r"^(?:on_failure|_?handle_\w*fail\w*|_?on_\w*fail\w*|\w*_on_failure\w*|_?nack|_?bury\w*|"
    r"requeue\w*|redrive\w*|retry_failed\w*|\w*dead_?letter\w*|\w*dlq\w*|xq_name|"
    r"_?message_\w*fail\w*|\w*_failed_jobs?|save_task)$",
    re.I,
)
DEAD_CLASS = re.compile(
    r"^(?:Failed\w*|\w*Failed(?:Job|Task|Entry|Message|Delivery)s?\w*|Failure|\w*DeadLetter\w*|"
    r"\w*Dlq\w*|RetryFailed\w*|\w*Graveyard\w*)$"
)
_ACTION_CALL = re.compile(
    r"clean|reset|requeue|redrive|retry_job|^retry_|nack|reject|abort|expire|purge|prune|error_state|"
    r"mark_as_fail|set_\w*(?:state|status|failed|error)",
    re.I,
)
_ACTION_WORDS = ("clean", "reset", "requeue", "redrive", "retry", "nack", "reject", "abort",
                 "expire", "purge", "prune", "error_state", "mark_as_fail", "set_")  # fmt: skip
_STATE_CALL_NAMES = frozenset(
    {"defer", "postpone", "set_pending", "set_failed", "set_done", "set_started", "set_enqueued",
     "set_cancelled", "set_state", "set_status", "mark_failed", "mark_as_failed",
     "mark_failure", "mark_as_failure", "mark_done", "mark_as_done", "mark_started",
     "mark_retry", "mark_as_retry", "requeue", "retry_job", "finish_job", "start", "terminate",
     "fail"}
)  # fmt: skip
_STATE_CALL = re.compile(
    r"^(?:defer|postpone|set_(?:pending|failed|done|started|enqueued|cancelled|state|status)|"
    r"mark_(?:as_)?(?:failed|failure|done|started|retry)|requeue|retry_job|finish_job|"
    r"start|terminate|fail)$",
    re.I,
)
_SQL_WRITE = re.compile(r"\b(?:update\s+[\w.\"]+\s+set|delete\s+from)\b", re.I)
_SQL_STATUS = re.compile(r"\bwhere\b[\s\S]*\b(?:status|state)\b", re.I)
_GUARD = re.compile(
    r"skip_locked|select_for_update|with_for_update|advisory|SKIP LOCKED|UPDATE\s+NOWAIT|"
    r"nowait\s*=\s*true|leader|"
    r"acquire\(|\.lock\(|_lock\(|thread_lock|maintenance_lock|synchronized|race_preventer|"
    r"FOR UPDATE",
    re.I,
)


_COMMENT = re.compile(r"(?m)#[^\n'\"]*$")


@dataclass
class _Facts:
    """What one function's code shows (computed once)."""

    text: str
    name: str
    status_sel: int = 0  # status/state used as a filter or compared
    transitions: int = 0  # status/state written
    writes: int = 0  # saves, updates, deletes, requeues...
    deletes: int = 0
    loops: int = 0
    worker_loop: bool = False
    sql_sweep: bool = False
    trigger: str | None = None
    dead_calls: int = 0
    state_calls: int = 0  # defer(), set_failed(), mark_as_failure(), requeue()...
    doc: str = ""  # the docstring, apart: "moves a message to the dead-letter queue" says so


def _facts(sc: PythonScanner, func: Func, text: str) -> _Facts:
    f = _Facts(text=text, name=func.name, doc=ast.get_docstring(func) or "")
    for n in sc.local_nodes(func):
        if isinstance(n, ast.Call):
            func_node = n.func
            last = (
                func_node.attr
                if isinstance(func_node, ast.Attribute)
                else func_node.id
                if isinstance(func_node, ast.Name)
                else ""
            )
            low = last.lower()
            if last in _WRITE_CALLS or (
                any(w in low for w in _ACTION_WORDS) and _ACTION_CALL.search(last)
            ):
                f.writes += 1
            if low in _STATE_CALL_NAMES:
                f.state_calls += 1
                if last in ("delete", "unlink", "destroy", "delete_many", "zrem"):
                    f.deletes += 1
            if last == "fail" and isinstance(n.func, ast.Attribute):
                f.dead_calls += 1
            for kw in n.keywords:
                if kw.arg and _STATE_NAME.match(kw.arg):
                    if last in ("update", "values", "write"):
                        f.transitions += 1
                    else:
                        f.status_sel += 1
        elif isinstance(n, ast.Dict):
            for k in n.keys:
                if (
                    isinstance(k, ast.Constant)
                    and isinstance(k.value, str)
                    and _STATE_NAME.match(k.value)
                ):
                    f.status_sel += 1
        elif isinstance(n, ast.Tuple) and len(n.elts) == 3:
            k = n.elts[0]  # Odoo domain term ('state', '=', 'started')
            if (
                isinstance(k, ast.Constant)
                and isinstance(k.value, str)
                and _STATE_NAME.match(k.value)
            ):
                f.status_sel += 1
        elif isinstance(n, ast.Compare):
            sides = [n.left, *n.comparators]
            if any(_not_a_job_state(side) for side in sides):
                continue  # `resp.status == 200`, `self.state is None`: no job state
            for side in sides:
                name = side.attr if isinstance(side, ast.Attribute) else None
                if isinstance(side, ast.Subscript) and isinstance(side.slice, ast.Constant):
                    name = str(side.slice.value)
                if name and _STATE_NAME.match(name):
                    f.status_sel += 1
        elif isinstance(n, ast.Assign):
            if _not_a_job_state(n.value):
                continue  # `self.status = 404`, `self.status = response.status`
            for t in n.targets:
                if isinstance(t, ast.Attribute) and _STATE_NAME.match(t.attr):
                    f.transitions += 1
        elif isinstance(n, ast.For | ast.AsyncFor):
            f.loops += 1
        elif isinstance(n, ast.While):
            f.loops += 1
            body = "\n".join(sc.lines[n.lineno - 1 : n.end_lineno or n.lineno])
            if _WORKER_CALL.search(body):
                f.worker_loop = True
        elif isinstance(n, ast.Constant) and isinstance(n.value, str) and len(n.value) > 20:
            low = n.value.lower()
            if _SQL_WRITE.search(low) and (_SQL_STATUS.search(low) or _AGE.search(low)):
                f.sql_sweep = True
                f.writes += 1
                f.deletes += "delete from" in low
            elif "select" in low and _SQL_STATUS.search(low):
                f.status_sel += 1
    f.trigger = _trigger(sc, func)
    return f


def _trigger(sc: PythonScanner, func: Func) -> str | None:
    trigger = sc.triggers.get(func.name)
    if trigger:
        return trigger
    for dec in func.decorator_list:
        target = dec.func if isinstance(dec, ast.Call) else dec
        name = dotted(target)
        if _PERIODIC.search(name) or (
            isinstance(dec, ast.Call)
            and any(k.arg in ("cron", "schedule", "spacing", "run_every") for k in dec.keywords)
        ):
            return f"@{name}"
    if sc.is_command and func.name == "handle":
        return "management command"
    return None


def _sweep_command(sc: PythonScanner, func: Func) -> bool:
    """A management command whose file is named like a sweeper (``retry_deferred.py``)."""
    if not (sc.is_command and func.name == "handle"):
        return False
    stem = sc.path.rsplit("/", 1)[-1].removesuffix(".py")
    return SWEEP_NAME.search(stem) is not None


def _docstring(func: Func) -> tuple[int, int] | None:
    """The first and last line of the function's docstring, if it has one."""
    first = func.body[0]
    if (
        isinstance(first, ast.Expr)
        and isinstance(first.value, ast.Constant)
        and isinstance(first.value.value, str)
    ):
        return first.lineno, first.end_lineno or first.lineno
    return None


def _code_text(sc: PythonScanner, func: Func) -> str:
    """The function's decorators and code below its docstring, its own name removed: a
    name or a docstring that says "timeout" (``_adapter_remove_timeout``) is no sign
    that the code compares ages."""
    doc = _docstring(func)
    start = doc[1] + 1 if doc is not None else func.body[0].lineno
    text = "\n".join(sc.lines[start - 1 : func.end_lineno or func.lineno])
    if func.decorator_list:  # `@periodic_task(spacing=CONF.cleanup_interval)`
        first_line = func.decorator_list[0].lineno
        text = "\n".join(sc.lines[first_line - 1 : func.lineno - 1]) + "\n" + text
    own = func.name.strip("_")
    return text.replace(own, "") if len(own) > 3 else text


def _sweeper(sc: PythonScanner, func: Func, qual: str, f: _Facts) -> bool:
    named = SWEEP_NAME.search(func.name) is not None or _sweep_command(sc, func)
    if not (named or f.trigger or f.sql_sweep):
        return False  # every rule below needs a sweeper's name, a timer or sweeping SQL
    code = _code_text(sc, func)
    age = _AGE.search(code) is not None
    # an age alone is no sweeper: an in-memory timer heap (`process_timeouts`) has one
    jobs = _JOB_WORDS.search(code) is not None
    acts = f.writes > 0 or f.transitions > 0 or f.sql_sweep
    selects = f.status_sel > 0 or f.transitions > 0
    if not (
        f.sql_sweep
        or (named and (selects or age) and (acts or age) and (acts or selects or jobs))
        or (named and acts and re.search(r"stuck|stale|abandon|orphan|dead", f.doc, re.I))
        or (f.trigger and selects and acts)
        or (f.trigger and age and acts and f.loops)
        or (_sweep_command(sc, func) and f.writes)
        or (named and f.writes >= 2 and _JOB_WORDS.search(f.text) is not None)
    ):
        return False
    guarded = _GUARD.search(f.text) is not None or any(
        re.search(r"synchroni|lock|leader", dotted(d.func if isinstance(d, ast.Call) else d), re.I)
        for d in func.decorator_list
    )
    run_by = f" ({f.trigger})" if f.trigger else ""
    why: list[str] = []
    if f.deletes and not f.transitions:
        what = "deletes rows by age or state"
        risk = Risk.LOW if guarded or not selects else Risk.MEDIUM
        why.append(
            "It deletes old or finished rows on a timer; a scheduled durable workflow runs "
            "it exactly once per tick."
        )
    elif guarded:
        what, risk = "moves stuck rows under a lock", Risk.MEDIUM
        why.append(
            "It decides by a timestamp or a state that work is stuck and takes it over; "
            "a lock keeps two sweepers apart, but a slow job can still be taken over."
        )
    else:
        what, risk = "moves stuck rows with no lock or lease", Risk.HIGH
        why.append(
            "It decides by a timestamp or a state that work is stuck and requeues or fails it "
            "with no lock or lease: a job that is only slow can run twice."
        )
    if f.trigger:
        why.append(f"It runs on a timer ({f.trigger}).")
    sc.sweepers_seen.add(func.name)
    sc.add(
        Kind.CRON_SWEEPER,
        "sweeper " + ("SQL" if f.sql_sweep else "function"),
        func.lineno,
        func.end_lineno or func.lineno,
        qual,
        risk,
        f"{what}{run_by}",
        Fix(
            "adapter",
            "cron-sweeper",
            False,
            "scheduled durable workflow; leases recover stuck work",
        ),
        why=tuple(why),
    )
    return True


def _dead_letter(sc: PythonScanner, func: Func, qual: str, f: _Facts) -> bool:
    named = _DEAD_NAME.match(func.name) is not None
    low = f"{f.text}\n{f.doc}".lower()
    failing = f.dead_calls > 0 and re.search(r"retr|exhaust|max_", f.text, re.I) is not None
    if not (named or failing or any(w in low for w in _DEAD_SUBSTRINGS)):
        return False
    # broker arguments (x-dead-letter-exchange) are reported by the broker scan
    said = f"{func.name}\n{f.text}\n{f.doc}".replace("x-dead-letter", "")
    words = _DEAD_WORDS.search(said) is not None
    if not (words or failing or (named and (f.writes or f.transitions or "fail" in f.text))):
        return False
    if not (words or failing or named):
        return False
    if (
        named
        and not words
        and not failing
        and func.name.startswith("on_")
        and not (f.writes or f.transitions)
    ):
        return False
    how = (
        "redrives failed work"
        if re.search(r"requeue|redrive|retry", func.name, re.I)
        else "handles failed work (dead letter)"
    )
    sc.add(
        Kind.DEAD_LETTER,
        "dead-letter code",
        func.lineno,
        func.end_lineno or func.lineno,
        qual,
        Risk.MEDIUM if f.writes or f.transitions else Risk.LOW,
        how,
        Fix("adapter", "dead-letter", False, "failed workflows you can inspect and retry"),
        why=(
            "Work that failed is parked here and retried by hand or by a script; "
            "re-running it repeats every side effect it had already done."
            if f.writes or f.transitions
            else "It names, lists or routes failed work: the dead-letter adapter imports it "
            "as failed workflows you can inspect and retry.",
        ),
    )
    return True


def _not_a_job_state(value: ast.expr) -> bool:
    """A value no job state takes: a number (an HTTP or protocol status), ``None``, a
    collection of numbers, or another object's ``.status`` copied (a response's)."""
    if isinstance(value, ast.Constant):
        return value.value is None or (
            isinstance(value.value, int | float) and not isinstance(value.value, bool)
        )
    if isinstance(value, ast.Tuple | ast.List | ast.Set):
        return bool(value.elts) and all(_not_a_job_state(e) for e in value.elts)
    if isinstance(value, ast.Call) and isinstance(value.func, ast.Name):
        return value.func.id in ("int", "float") and len(value.args) == 1  # int(status)
    return (
        isinstance(value, ast.Attribute)
        and _STATE_NAME.match(value.attr) is not None
        and isinstance(value.value, ast.Name)
        and value.value.id in ("response", "resp", "res", "r", "reply", "http_response")
    )


def _job_code(sc: PythonScanner, func: Func, qual: str, f: _Facts, cls: str | None) -> bool:
    low = f.text.lower()
    named_job = _JOB_WORDS.search(f"{cls or ''} {func.name}") is not None
    if not (
        named_job
        or f.worker_loop
        or f.transitions
        or f.state_calls
        or f.status_sel
        or any(w in low for w in ("skip", "for update", "for_update", "dequeue", "claim"))
    ):
        return False  # nothing a job-table claim, move or loop needs
    ctx = _JOB_WORDS.search(f"{cls or ''} {func.name}") is not None or (
        cls is not None and cls in sc.job_classes
    )
    if not ctx:
        ctx = len(_JOB_WORDS.findall(f.text)) >= 3
    if not ctx:  # SKIP LOCKED is a job queue's claim whatever the table is called
        ctx = re.search(r"skip[\s_]locked", f.text, re.I) is not None
    if not ctx:
        return False
    claim = _CLAIM.search(f.text) is not None
    book = _RETRY_BOOK.search(f.text) is not None
    in_model = cls is not None and cls in sc.job_classes
    strong = _JOB_WORDS.search(f"{cls or ''} {func.name}") is not None or in_model
    moves = f.transitions + f.state_calls
    if not (
        claim
        or f.worker_loop
        or (strong and moves >= 2)
        or (strong and book and f.writes and re.search(r"\.(?:put|enqueue)\(", f.text))
        or (moves and (book or f.status_sel or in_model))
        or (f.status_sel and book and f.writes)
        or (
            f.status_sel >= 1
            and re.search(r"scheduled?_(?:time|at)|run_after|eta", f.text) is not None
        )
    ):
        return False
    if f.worker_loop:
        what, pattern = "a worker loop over a job table", "job worker loop"
    elif claim:
        what, pattern = "claims job rows", "job claim"
    else:
        what, pattern = "moves job rows through their states by hand", "job state transitions"
    # NOWAIT of SQL or an ORM's `nowait=True`; an AMQP `nowait` argument is not a claim
    guarded = re.search(r"skip[\s_]locked|update\s+nowait|nowait\s*=\s*true", f.text, re.I)
    sc.add(
        Kind.STATUS_POLLER,
        pattern,
        func.lineno,
        func.end_lineno or func.lineno,
        qual,
        Risk.LOW if guarded else Risk.MEDIUM,
        what,
        Fix("adapter", "status-column", False, "rows become durable workflows; workers use leases"),
        why=(
            "Job state lives in a status column that this code reads and writes by hand; "
            + (
                "rows are claimed with SKIP LOCKED/NOWAIT, so two workers do not take one job."
                if guarded
                else "a crash between the claim and the final update leaves the row stuck "
                "until a sweeper guesses it is dead."
            ),
        ),
    )
    return True


_STRONG = re.compile(
    r"job|queue|worker|task|message|deliver|dead|dlq|periodic|cron|beat|stuck|stale|stalled|"
    r"expire|heartbeat|lease|claim|skip.locked|for update|select_for_update|requeue|sweep|"
    r"\.fail\(|failed|failure|retry|retries|attempt|nack|bury|timeout|orphan|cleanup|purge",
    re.I,
)


def scan_function(sc: PythonScanner, func: Func, qual: str, cls: str | None) -> bool:
    """Report ``func`` as a sweeper, dead-letter or job-table code; True when reported."""
    start = min([func.lineno] + [d.lineno for d in func.decorator_list])
    text = "\n".join(sc.lines[start - 1 : func.end_lineno or func.lineno])
    if not _STRONG.search(text) and not (sc.is_command and func.name == "handle"):
        return False  # cheap: no word any of the three shapes needs
    text = _COMMENT.sub("", text)  # words in comments are no evidence, nor in the docstring
    doc = _docstring(func)
    if doc is not None:
        lines = text.split("\n")
        first, last = doc[0] - start, doc[1] - start
        text = "\n".join([*lines[:first], *lines[last + 1 :]])
    f = _facts(sc, func, text)
    if re.search(r"claim|dequeue|acquire|fetch_job|_pull", func.name, re.I):
        return _job_code(sc, func, qual, f, cls) or _sweeper(sc, func, qual, f)
    return (
        _sweeper(sc, func, qual, f)
        or _dead_letter(sc, func, qual, f)
        or _job_code(sc, func, qual, f, cls)
    )


def scan_class(sc: PythonScanner, cls: ast.ClassDef, qual: str) -> bool:
    """A failed-work class (``FailedJobRegistry``, a ``Failure`` proxy model, a redrive API)."""
    if not DEAD_CLASS.match(cls.name):
        return False
    if any(re.search(r"(Error|Exception|Warning)$", dotted(b)) for b in cls.bases):
        return False
    if not any(isinstance(s, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Assign)
               for s in cls.body):  # fmt: skip
        return False
    sc.add(
        Kind.DEAD_LETTER,
        "failed-work class",
        cls.lineno,
        cls.end_lineno or cls.lineno,
        qual,
        Risk.LOW,
        f"`{cls.name}` holds or serves failed work for retry by hand",
        Fix("adapter", "dead-letter", False, "import rows as failed workflows"),
        why=(
            "Failed work is kept here and retried by hand, outside any workflow; the "
            "dead-letter adapter makes each entry a failed workflow you can inspect and retry.",
        ),
    )
    return True

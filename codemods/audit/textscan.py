"""Text scanners: SQL (``CREATE TABLE``, sweeper ``UPDATE``\\s, dead-letter
``INSERT``\\s), crontab files and broker dead-letter configuration.

These run on ``.sql`` files, crontabs, JSON/YAML/Terraform files and on the
string constants of Python files; they never execute anything.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

STATUS_COLUMNS = frozenset(
    {"status", "state", "job_status", "task_status", "job_state", "task_state", "phase"}
)
BOOKKEEPING_COLUMNS = frozenset(
    {"attempts", "attempt", "attempt_count", "attempts_count", "retries", "retry_count",
     "retries_count", "num_retries", "num_attempts", "tries", "try_count", "max_attempts",
     "max_retries", "next_retry_at", "next_attempt_at", "retry_at", "retry_after", "run_after",
     "next_run_at", "run_at",
     "last_error", "error_message", "last_exception", "locked_by", "locked_at",
     "lease_until", "lease_expires_at", "leased_until", "claimed_by", "claimed_at",
     "heartbeat", "heartbeat_at", "last_heartbeat", "worker_id", "failed_at"}
)  # fmt: skip
LOCK_COLUMNS = frozenset({"locked_by", "locked_at", "claimed_by", "claimed_at", "worker_id"})
_DEAD_NAME = re.compile(
    r"(^|_)(failed|failures?|dead|dlq|deadletter|dead_?letters?|graveyard|bur(y|ied)|poison)"
    r"($|_)|^failed|deadletter|dead_letter|failedtask|failedjob|failedmessage",
    re.I,
)
_ERROR_COLUMNS = re.compile(r"error|exception|traceback|reason|payload|args|failed_at|message")
SWEEP_NAME = re.compile(
    r"requeue|re_queue|sweep|stuck|stale|reap|rescue|recover|resubmit|redrive|reschedule|"
    r"orphan|zombie|retry_failed|retry_stuck|reset_(jobs|tasks)|unlock",
    re.I,
)
_TIMEISH = r"\w*(?:_at|_on|time|timestamp|heartbeat|updated|modified|started|created|deadline)\w*"
_SWEEP_SQL = re.compile(
    r"\bupdate\s+[\w.\"`\[\]]+\s+set\b[^;]*?\b(?:status|state)\s*=[^;]*?\bwhere\b[^;]*?"
    r"(?:\b" + _TIMEISH + r"\s*<|(?:now\(\)|current_timestamp|datetime\('now')\s*-|"
    r"\b(?:status|state)\s*(?:=|in\s*\()\s*'(?:failed|error|errored|stuck|timed_out)')",
    re.I | re.S,
)
SQL_GUARD = re.compile(
    r"skip\s+locked|nowait|pg_try_advisory|advisory_lock|get_lock\(|for\s+update", re.I
)
_DEAD_INSERT = re.compile(
    r"\binsert\s+into\s+[\"`]?(\w*(?:failed|dead|dlq|graveyard|bur(?:y|ied)|poison)\w*)", re.I
)
_CREATE_TABLE = re.compile(
    r"\bcreate\s+(?:unlogged\s+|temporary\s+|temp\s+)?table\s+(?:if\s+not\s+exists\s+)?"
    r"(%\(\w+\)s|\{\w+\}|[\w.\"`\[\]]+)\s*\(",
    re.I,
)
#: rows found stuck by age: DELETE or SELECT filtered by "older than now minus"
_STALE_SQL = re.compile(
    r"\b(delete\s+from|select)\b[^;]*?\bwhere\b[^;]*?"
    r"(?:<|<=)\s*(?:now\(\)|current_timestamp|datetime\('now'\)|clock_timestamp\(\))\s*-",
    re.I | re.S,
)
#: a claim: rows picked FOR UPDATE SKIP LOCKED / NOWAIT and moved to another status
_CLAIM_SQL = re.compile(r"for\s+update(?:\s+of\s+\w+)?\s+(?:skip\s+locked|nowait)", re.I)
#: a retry recorded on the row: status back to a waiting state and attempts counted up
_RETRY_SQL = re.compile(
    r"\bupdate\b[^;]*?\bset\b[^;]*?\b(?:attempts|retries|retry_count|tries)\s*=\s*"
    r"(?:\w+\.)?(?:attempts|retries|retry_count|tries)\s*\+\s*1",
    re.I | re.S,
)
_CONSTRAINT_WORDS = frozenset(
    {"primary", "foreign", "unique", "constraint", "check", "key", "index", "exclude", "like"}
)
_RABBIT_DLX = re.compile(r"x-dead-letter-(?:exchange|routing-key)")
_RABBIT_TTL = re.compile(r"x-message-ttl")
_SQS_REDRIVE = re.compile(r"RedrivePolicy|deadLetterTargetArn|redrive_policy|dead_letter_queue")
_CRON_LINE = re.compile(
    r"^\s*(?:@(?:reboot|yearly|annually|monthly|weekly|daily|midnight|hourly)|"
    r"(?:\S+\s+){5})(.*\S)"
)


@dataclass(frozen=True)
class TextFinding:
    """A finding in text: what, where (1-based lines), and details."""

    # status-table | dead-letter-table | sweeper-sql | dead-letter-insert | dlx | sqs | cron
    what: str
    start_line: int
    end_line: int
    name: str
    detail: tuple[str, ...] = ()
    guarded: bool = False


def line_of(text: str, offset: int) -> int:
    """1-based line number of ``offset`` in ``text``."""
    return text.count("\n", 0, offset) + 1


def _balanced(text: str, open_at: int) -> int:
    """Index just past the parenthesis that closes the one at ``open_at`` (or len)."""
    depth = 0
    quote: str | None = None
    for i in range(open_at, len(text)):
        ch = text[i]
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"`":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                return i + 1
    return len(text)


def _split_top(body: str) -> list[str]:
    parts: list[str] = []
    cur: list[str] = []
    depth = 0
    for ch in body:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts


_JOB_TABLE_NAME = re.compile(r"job|queue|worker|outbox", re.I)
_TASK_TABLE_NAME = re.compile(r"task|message|mail|deliver", re.I)
SCHEDULE_COLUMNS = frozenset(
    {"run_at", "execute_at", "scheduled", "scheduled_at", "scheduled_time", "schedule_at",
     "eta", "dequeued_at", "enqueued_at", "date_enqueued", "locked_at", "locked_by", "lock",
     "locked_until", "lease_until", "lease_expires_at", "leased_until", "heartbeat",
     "heartbeat_at", "last_heartbeat", "next_retry_at", "next_attempt_at", "retry_at",
     "retry_time", "run_after", "next_run_at", "worker", "worker_id", "worker_pid",
     "started", "started_at", "date_started", "expected_at", "expire_at", "expires_at"}
)  # fmt: skip
_QUEUE_COLUMNS = frozenset({"queue", "queue_name", "q_name", "channel", "payload"})
_TRACE_COLUMNS = frozenset({"traceback", "last_error", "error", "exc_info", "exc_message",
                            "error_message", "last_exception", "exception"})  # fmt: skip


def classify_table(name: str, columns: list[str]) -> TextFinding | None:
    """Decide whether a table is a job table or a dead-letter table.

    A job table has a status-like column *and* retry bookkeeping (or an error
    column), or a job-like name (jobs, tasks, queue, messages, deliveries)
    with a status or scheduling column, or queue and scheduling columns; a
    table with only a ``status`` (orders, users) is not reported. A failed-work
    table with its own retry schedule is a job table too.
    """
    cols = {c.lower() for c in columns}
    short = name.lower().strip('"`[]').rsplit(".", 1)[-1]
    status = cols & STATUS_COLUMNS
    book = cols & BOOKKEEPING_COLUMNS
    sched = cols & SCHEDULE_COLUMNS
    if (
        _DEAD_NAME.search(short)
        and any(_ERROR_COLUMNS.search(c) for c in cols)
        and not (cols & {"retry_time", "next_retry_at", "retry_at"})
    ):
        return TextFinding("dead-letter-table", 0, 0, short, tuple(sorted(book)))
    jobish = _JOB_TABLE_NAME.search(short) is not None
    if (
        (status and (book or cols & _TRACE_COLUMNS))
        or (jobish and (status or sched or book))
        or (
            _TASK_TABLE_NAME.search(short)
            and (status or book)
            and (book or sched or cols & (_TRACE_COLUMNS | _QUEUE_COLUMNS))
        )
        or (cols & _QUEUE_COLUMNS and sched)
        or (_DEAD_NAME.search(short) and sched)
    ):
        extra = tuple(sorted((book | sched | (cols & _TRACE_COLUMNS)) - status))
        return TextFinding("status-table", 0, 0, short, tuple(sorted(status)) + extra)
    return None


def scan_sql(text: str) -> list[TextFinding]:
    """Job tables, dead-letter tables, sweeper UPDATEs and dead-letter INSERTs in SQL text."""
    found: list[TextFinding] = []
    for m in _CREATE_TABLE.finditer(text):
        end = _balanced(text, m.end() - 1)
        body = text[m.end() : end - 1]
        columns = []
        for part in _split_top(body):
            words = part.strip().split()
            if words and words[0].lower() not in _CONSTRAINT_WORDS:
                columns.append(words[0].strip('"`[]'))
        table = classify_table(m.group(1), columns)
        if table:
            found.append(
                TextFinding(
                    table.what,
                    line_of(text, m.start()),
                    line_of(text, end),
                    table.name,
                    table.detail,
                )
            )
    for m in _SWEEP_SQL.finditer(text):
        stmt_end = text.find(";", m.end())
        stmt = text[m.start() : stmt_end if stmt_end != -1 else len(text)]
        found.append(
            TextFinding(
                "sweeper-sql",
                line_of(text, m.start()),
                line_of(text, m.start() + len(stmt)),
                "UPDATE",
                guarded=SQL_GUARD.search(text) is not None,
            )
        )
    for m in _STALE_SQL.finditer(text):
        stmt_end = text.find(";", m.end())
        stmt = text[m.start() : stmt_end if stmt_end != -1 else len(text)]
        low = stmt.lower()
        if m.group(1).lower() == "select" and not re.search(
            r"\b(?:status|state)\b|heartbeat|lock", low
        ):
            continue
        line = line_of(text, m.start())
        if any(f.what == "sweeper-sql" and f.start_line <= line <= f.end_line for f in found):
            continue
        found.append(
            TextFinding(
                "sweeper-sql",
                line,
                line_of(text, m.start() + len(stmt)),
                "DELETE" if low.startswith("delete") else "SELECT",
                guarded=SQL_GUARD.search(text) is not None,
            )
        )
    for pattern, what in ((_CLAIM_SQL, "claim-sql"), (_RETRY_SQL, "retry-sql")):
        for m in pattern.finditer(text):
            begin = text.rfind(";", 0, m.start()) + 1
            if what == "retry-sql":
                begin = m.start()
            while True:  # skip blank and comment lines before the statement
                rest = text[begin : m.start()]
                stripped = rest.lstrip()
                begin += len(rest) - len(stripped)
                if not stripped.startswith("--"):
                    break
                eol = text.find("\n", begin)
                begin = eol + 1 if eol != -1 else m.start()
            line = line_of(text, begin)
            if any(f.what == "sweeper-sql" and f.start_line <= line <= f.end_line for f in found):
                continue  # a sweeper that also counts attempts: reported once, as the sweeper
            end = text.find(";", m.end())
            found.append(
                TextFinding(what, line, line_of(text, end if end != -1 else len(text)), what)
            )
    for m in _DEAD_INSERT.finditer(text):
        line = line_of(text, m.start())
        found.append(TextFinding("dead-letter-insert", line, line, m.group(1)))
    return found


def scan_broker_config(text: str) -> list[TextFinding]:
    """RabbitMQ dead-letter arguments and SQS redrive policies.

    A ``x-dead-letter-exchange`` next to ``x-message-ttl`` (within 5 lines) is
    a delay queue, not a dead-letter queue, and is not reported.
    """
    found: list[TextFinding] = []
    lines = text.splitlines()
    seen: set[int] = set()
    for i, line in enumerate(lines):
        if _RABBIT_DLX.search(line):
            window = "\n".join(lines[max(0, i - 5) : i + 6])
            if _RABBIT_TTL.search(window) or any(j in seen for j in range(i - 3, i)):
                seen.add(i)
                continue
            seen.add(i)
            found.append(TextFinding("dlx", i + 1, i + 1, "x-dead-letter-exchange"))
        elif _SQS_REDRIVE.search(line):
            if any(j in seen for j in range(i - 3, i)):
                seen.add(i)
                continue
            seen.add(i)
            found.append(TextFinding("sqs", i + 1, i + 1, "redrive policy"))
    return found


def scan_crontab(text: str) -> list[TextFinding]:
    """Crontab entries whose command looks like a sweeper (requeue, stale, stuck...)."""
    found: list[TextFinding] = []
    for i, line in enumerate(text.splitlines()):
        if line.lstrip().startswith("#") or "=" in line.split(" ", 1)[0]:
            continue
        m = _CRON_LINE.match(line)
        if m and SWEEP_NAME.search(m.group(1)):
            found.append(TextFinding("cron", i + 1, i + 1, m.group(1).strip()))
    return found


_ODOO_CRON = re.compile(r"<record\b[^>]*\bmodel=[\"']ir\.cron[\"'][^>]*>(.*?)</record>", re.S)
_CRON_WORDS = re.compile(
    r"requeue|stuck|stale|stalled|garbage|clean|purge|prune|expire|retry|reap|orphan|timeout",
    re.I,
)


def scan_odoo_cron(text: str) -> list[TextFinding]:
    """Odoo ``ir.cron`` records (XML data files) whose name or code looks like a sweeper."""
    found: list[TextFinding] = []
    for m in _ODOO_CRON.finditer(text):
        if _CRON_WORDS.search(m.group(1)):
            code = re.search(r"model\.(\w+)\(", m.group(1))
            name = code.group(1) if code else "ir.cron job"
            found.append(
                TextFinding("cron", line_of(text, m.start()), line_of(text, m.end()), name)
            )
    return found

"""Classify the calls in a piece of code by their side effects.

Pure ``ast`` pattern matching on call shapes and receiver names: it is a
heuristic that errs towards naming a side effect, never a proof.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable
from dataclasses import dataclass

# Effect labels. EXTERNAL effects are at-least-once outside our database.
HTTP_WRITE = "HTTP write"
PAYMENT = "payment SDK call"
EMAIL = "email/SMS send"
PUBLISH = "message publish"
STORE_WRITE = "write to another data store"
DB_WRITE = "database write"
HTTP_READ = "HTTP read"
SDK_WRITE = "SDK call that changes something"

EXTERNAL = frozenset({HTTP_WRITE, PAYMENT, EMAIL, PUBLISH, STORE_WRITE, SDK_WRITE})

_HTTPISH = re.compile(r"requests|httpx|http|client|api|aiohttp|urllib|session|conn|rest", re.I)
_URLISH = re.compile(r"url|uri|endpoint|path|href|link", re.I)
_PAYMENT_ROOTS = ("stripe", "braintree", "paypal", "paypalrestsdk", "adyen", "square", "razorpay")
_PAYMENT_FUNCS = re.compile(r"(^|_)(charge|refund|payout|capture_payment|pay)($|_)", re.I)
_EMAIL_FUNCS = frozenset(
    {"sendmail", "send_mail", "send_mass_mail", "send_email", "send_raw_email",
     "send_templated_email", "send_sms", "send_notification"}
)  # fmt: skip
_MAILISH = re.compile(r"smtp|mail|ses|sendgrid|mailgun|postmark|twilio|sns", re.I)
_PUBLISH_FUNCS = frozenset(
    {"publish", "basic_publish", "send_task", "apply_async", "produce", "send_message",
     "send_message_batch", "put_record", "put_records", "put_events", "xadd", "publish_message"}
)  # fmt: skip
_QUEUEISH = re.compile(
    r"producer|kafka|queue|channel|topic|sqs|kinesis|pubsub|broker|exchange", re.I
)
_STORE_FUNCS = frozenset(
    {"put_object", "upload_file", "upload_fileobj", "insert_one", "insert_many", "update_one",
     "update_many", "replace_one", "delete_one", "delete_many", "put_item", "update_item",
     "batch_write_item", "hset", "hmset", "setex", "mset"}
)  # fmt: skip
_REDISISH = re.compile(r"redis|cache|mongo|dynamo|s3|bucket|memcache", re.I)
_SESSIONISH = re.compile(r"session|db|conn|cursor|cur|tx|transaction|engine", re.I)
_SQL_WRITE = re.compile(r"^\s*(insert|update|delete|merge|upsert|replace)\b", re.I)
_IDEMPOTENCY = re.compile(
    r"idempot|dedup|client_?token|clientrequesttoken|request_?token|x-request-id", re.I
)
#: SDK verbs that create, charge, send or delete, on a receiver that looks like a client
_SDK_VERB = re.compile(
    r"^(?:create|delete|remove|put|post|send|publish|charge|refund|transfer|cancel|terminate|"
    r"run|start|stop|reboot|invoke|modify|attach|detach|associate|disassociate|allocate|"
    r"release|submit|enqueue|upload|write|register|deregister|restore|copy|tag|untag|"
    r"execute|apply|capture|void|issue|provision|deploy|resize|migrate|rebuild|"
    r"update)_\w+$|^(?:create|charge|refund|capture|void|destroy|provision)$",
    re.I,
)
_CLIENTISH = re.compile(
    r"client|api|sdk|service|conn|boto|resource|stub|ec2|s3|sqs|sns|rds|lambda|iam|kms|"
    r"dynamodb|compute|driver|cloud|nova|cinder|glance|neutron|\bk8s|v1|_api$",
    re.I,
)
#: reads that fetch data (a download is not a write)
_DOWNLOADS = frozenset(
    {"urlretrieve", "download", "download_file", "download_fileobj", "get_object", "stream",
     "iter_content", "fetch_url", "read_url"}
)  # fmt: skip


def dotted(node: ast.AST) -> str:
    """``a.b.c`` for a Name/Attribute chain (calls in the chain become ``()``)."""
    parts: list[str] = []
    while True:
        if isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        elif isinstance(node, ast.Name):
            parts.append(node.id)
            break
        elif isinstance(node, ast.Call):
            parts.append("()")
            node = node.func
        else:
            parts.append("?")
            break
    return ".".join(reversed(parts))


def _first_str(call: ast.Call) -> str | None:
    if call.args and isinstance(call.args[0], ast.Constant) and isinstance(call.args[0].value, str):
        return call.args[0].value
    return None


def _method_kw(call: ast.Call) -> str | None:
    for kw in call.keywords:
        if kw.arg == "method" and isinstance(kw.value, ast.Constant):
            return str(kw.value.value)
    return None


def classify_call(call: ast.Call) -> str | None:
    """The side-effect label of one call, or None when it looks harmless."""
    func = call.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    receiver = dotted(func.value) if isinstance(func, ast.Attribute) else ""
    full = dotted(func)
    lname = name.lower()
    root = full.split(".", 1)[0].lower()

    if root in _PAYMENT_ROOTS:
        return PAYMENT
    if lname in _DOWNLOADS:
        return HTTP_READ
    if lname == "urlopen" or (lname == "open" and "opener" in receiver.lower()):
        # urlopen(url, data=...) and urlopen(Request(url, data=...)) send a body: a write
        first = call.args[0] if call.args else None
        if len(call.args) > 1 or any(k.arg == "data" for k in call.keywords):
            return HTTP_WRITE
        if isinstance(first, ast.Call) and dotted(first.func).rsplit(".", 1)[-1] == "Request":
            return classify_call(first) or HTTP_READ
        return HTTP_READ
    if name == "Request" and (
        len(call.args) > 1 or any(k.arg in ("data", "method") for k in call.keywords)
    ):
        method = (_method_kw(call) or "").upper()
        if method in ("GET", "HEAD", "OPTIONS"):
            return HTTP_READ
        return HTTP_WRITE
    if lname in ("post", "put", "patch"):
        return HTTP_WRITE
    if lname == "delete":
        first = call.args[0] if call.args else None
        url_arg = isinstance(first, ast.Constant | ast.JoinedStr) or (
            isinstance(first, ast.Name) and _URLISH.search(first.id) is not None
        )
        if url_arg and _HTTPISH.search(receiver):
            return HTTP_WRITE
        if _SESSIONISH.search(receiver) or receiver.endswith("objects") or not call.args:
            return DB_WRITE
        return None
    if lname in ("request", "fetch", "open_url"):
        method = (_first_str(call) or _method_kw(call) or "").upper()
        if method in ("POST", "PUT", "PATCH", "DELETE"):
            return HTTP_WRITE
        if method in ("GET", "HEAD", "OPTIONS"):
            return HTTP_READ
        return None
    if lname in ("get", "head", "options") and re.search(
        r"requests|httpx|http|client|api", receiver
    ):
        return HTTP_READ
    if lname in _EMAIL_FUNCS or (lname == "send_message" and _MAILISH.search(receiver)):
        return EMAIL
    if full.endswith("messages.create") and _MAILISH.search(full):
        return EMAIL
    if _PAYMENT_FUNCS.search(name) and not lname.startswith("get"):
        return PAYMENT
    if lname in _PUBLISH_FUNCS or (lname == "send" and _QUEUEISH.search(receiver)):
        return PUBLISH
    if lname in _STORE_FUNCS or (lname == "set" and _REDISISH.search(receiver)):
        return STORE_WRITE
    if _SDK_VERB.match(name) and (
        _CLIENTISH.search(receiver) or (receiver[:1].isupper() and "." not in receiver)
    ):
        return SDK_WRITE
    if lname in ("commit", "flush", "add", "add_all", "merge", "bulk_save_objects"):
        return DB_WRITE if _SESSIONISH.search(receiver) else None
    if lname in ("save", "bulk_create", "bulk_update", "update_or_create", "get_or_create"):
        return DB_WRITE
    if receiver.endswith("objects") and lname in ("create", "update"):
        return DB_WRITE
    if lname in ("execute", "executemany", "exec_driver_sql"):
        sql = _first_str(call)
        if sql is not None and _SQL_WRITE.search(sql):
            return DB_WRITE
        first = call.args[0] if call.args else None
        if isinstance(first, ast.Call) and dotted(first.func).split(".")[-1] in (
            "insert",
            "update",
            "delete",
        ):
            return DB_WRITE
        if isinstance(first, ast.Call) and isinstance(first.func, ast.Attribute):
            inner = dotted(first.func)
            if re.search(r"(^|\.)(insert|update|delete)\(?\)?\.", inner + "."):
                return DB_WRITE
    return None


@dataclass(frozen=True)
class Effects:
    """The side effects found in a region and whether an idempotency key is used."""

    labels: tuple[str, ...]
    idempotency_key: bool
    #: the project's own functions through which a side effect was seen
    via: tuple[str, ...] = ()

    @property
    def external(self) -> tuple[str, ...]:
        return tuple(label for label in self.labels if label in EXTERNAL)

    @property
    def db_write(self) -> bool:
        return DB_WRITE in self.labels

    @property
    def non_idempotent(self) -> bool:
        return bool(self.external) or self.db_write


ORDER = [HTTP_WRITE, PAYMENT, EMAIL, PUBLISH, STORE_WRITE, SDK_WRITE, DB_WRITE, HTTP_READ]


def merge(first: Effects, more: Iterable[tuple[str, Effects]]) -> Effects:
    """``first`` plus the effects of called functions (``(name, effects)`` pairs)."""
    labels = list(first.labels)
    key = first.idempotency_key
    via = list(first.via)
    for name, eff in more:
        new = [label for label in eff.labels if label not in labels]
        if new:
            labels += new
            via.append(name)
        key = key or (eff.idempotency_key and bool(eff.labels))
    labels.sort(key=ORDER.index)
    return Effects(tuple(labels), key, tuple(via))


def _walk_no_defs(nodes: Iterable[ast.AST]) -> Iterable[ast.AST]:
    """Walk statements without descending into nested functions or classes."""
    stack = list(nodes)
    while stack:
        node = stack.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if not isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                stack.append(child)


def find_effects(nodes: Iterable[ast.AST]) -> Effects:
    """Side effects of the calls in ``nodes`` (nested defs excluded)."""
    labels: list[str] = []
    key = False
    for node in _walk_no_defs(nodes):
        if isinstance(node, ast.Call):
            label = classify_call(node)
            if label and label not in labels:
                labels.append(label)
            for kw in node.keywords:
                if kw.arg and _IDEMPOTENCY.search(kw.arg):
                    key = True
                elif kw.arg == "headers" and isinstance(kw.value, ast.Dict):
                    key = key or any(
                        isinstance(k, ast.Constant)
                        and isinstance(k.value, str)
                        and _IDEMPOTENCY.search(k.value) is not None
                        for k in kw.value.keys
                    )
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if len(node.value) < 80 and _IDEMPOTENCY.search(node.value):
                key = True
        elif isinstance(node, ast.Name | ast.Attribute):
            ident = node.id if isinstance(node, ast.Name) else node.attr
            if _IDEMPOTENCY.search(ident):
                key = True
    labels.sort(key=ORDER.index)
    return Effects(tuple(labels), key)

"""Retry libraries, Celery, schedules and the project's own retry helpers, per file.

Decorators of tenacity, backoff, stamina, retrying, retry, retry_decorator,
google-api-core, oslo.db/service/utils, AWSRetry, Dramatiq and Celery; facades
and home-made decorators (registered as helpers for :mod:`project` to follow
across files); retry policies handed to clients; schedule triggers and Celery
beat entries. Module functions over the :class:`~codemods.audit.pyscan.PythonScanner`.
"""

from __future__ import annotations

import ast
import re
from typing import TYPE_CHECKING, TypeAlias

from codemods.audit import jobscan
from codemods.audit.astutil import excerpt as _excerpt
from codemods.audit.astutil import walk_local as _walk_local
from codemods.audit.effects import dotted
from codemods.audit.model import Fix, Kind, Risk
from codemods.audit.project import HelperDef, UseSite
from codemods.audit.tables import PERIODIC

if TYPE_CHECKING:
    from codemods.audit.pyscan import PythonScanner

Func: TypeAlias = ast.FunctionDef | ast.AsyncFunctionDef

_TRIGGER_TEXT = (".do(", "add_job", "scheduled_job", "add_periodic_task", "beat_schedule",
                 "BEAT_SCHEDULE")  # fmt: skip
_BEAT_NAMES = re.compile(r"beat_schedule|CELERYBEAT_SCHEDULE|CELERY_BEAT_SCHEDULE", re.I)
# resolved decorator name -> library
_DECORATORS: dict[str, str] = {
    "tenacity.retry": "tenacity",
    "backoff.on_exception": "backoff",
    "backoff.on_predicate": "backoff",
    "retrying.retry": "retrying",
    "retry.retry": "retry",
    "retry.api.retry": "retry",
    "stamina.retry": "stamina",
    "oslo_db.api.wrap_db_retry": "oslo.db",
    "google.api_core.retry.Retry": "google.api_core",
    "google.api_core.retry_async.AsyncRetry": "google.api_core",
    "oslo_service.loopingcall.RetryDecorator": "oslo.service",
    "oslo_utils.excutils.forever_retry_uncaught_exceptions": "oslo.utils",
    "retry_decorator.retry": "retry_decorator",
    "retry_decorator.retry_decorator.retry": "retry_decorator",
    "google.api_core.retry.retry_async.AsyncRetry": "google.api_core",
    "google.api_core.retry_async.Retry": "google.api_core",
}
#: retry libraries whose constructor or decorator, called inside a project function that
#: wraps a callable with it, makes that function a project retry helper (a facade)
_FACADE_TARGETS: dict[str, str] = {
    "tenacity.Retrying": "tenacity",
    "tenacity.AsyncRetrying": "tenacity",
    "tenacity.retry": "tenacity",
    "oslo_db.api.wrap_db_retry": "oslo.db",
    "backoff.on_exception": "backoff",
    "backoff.on_predicate": "backoff",
    "retrying.retry": "retrying",
    "retrying.Retrying": "retrying",
    "stamina.retry": "stamina",
    "google.api_core.retry.Retry": "google.api_core",
}
_CLASS_RETRY = re.compile(r"(?:^|\.)(?:AWSRetry|CloudRetry)\.\w+$")
# decorators that are never a project's retry helper (not recorded as possible use sites)
_NOT_HELPERS = frozenset(
    {"property", "staticmethod", "classmethod", "wraps", "abstractmethod", "cached_property",
     "setter", "getter", "deleter", "overload", "override", "route", "get", "post", "put",
     "delete", "patch", "fixture", "parametrize", "mark", "command", "group", "option",
     "argument", "dataclass", "contextmanager", "asynccontextmanager", "lru_cache", "cache",
     "receiver", "register", "login_required", "api_view", "action", "setup", "skip",
     "skipif", "xfail", "validator", "field_validator", "root_validator", "model_validator",
     "total_ordering", "singledispatch", "njit", "jit"}
)  # fmt: skip
_NOT_HELPER_ROOTS = frozenset(
    {"pytest", "unittest", "mock", "functools", "abc", "typing", "contextlib", "click",
     "dataclasses", "six", "django", "flask", "fastapi", "pydantic", "attr", "attrs"}
)  # fmt: skip
#: keyword arguments that hand a retry policy to a client or a call
_RETRY_KWARGS = frozenset(
    {"retry_decorator", "retry", "retry_policy", "retry_strategy", "max_retries", "retries",
     "retry_config"}
)  # fmt: skip
_LIB_ROOTS = frozenset(
    {"tenacity", "backoff", "retrying", "stamina", "retry", "retry_decorator", "google"}
)


def scan_triggers(sc: PythonScanner) -> None:
    """Record which functions are run on a schedule, and report beat entries."""
    if not any(lit in sc.text for lit in _TRIGGER_TEXT):
        return
    for node in sc.nodes:
        if isinstance(node, ast.Call):
            name = dotted(node.func)
            last = name.rsplit(".", 1)[-1]
            if last == "do" and "every" in name and node.args:
                target = dotted(node.args[0]).rsplit(".", 1)[-1]
                sc.triggers[target] = "`schedule` job"
            elif last in ("add_job", "scheduled_job") and node.args:
                target = dotted(node.args[0]).rsplit(".", 1)[-1]
                sc.triggers[target] = "APScheduler job"
            elif last == "add_periodic_task" and len(node.args) >= 2:
                target = dotted(node.args[1]).split(".()")[0].rsplit(".", 1)[-1]
                sc.triggers[target] = "Celery beat (add_periodic_task)"
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if isinstance(node.value, ast.Dict) and any(
                _BEAT_NAMES.search(dotted(t)) for t in targets
            ):
                scan_beat(sc, node.value)


def scan_beat(sc: PythonScanner, schedule: ast.Dict) -> None:
    for value in schedule.values:
        if not isinstance(value, ast.Dict):
            continue
        for k, v in zip(value.keys, value.values, strict=False):
            if (
                isinstance(k, ast.Constant)
                and k.value == "task"
                and isinstance(v, ast.Constant)
                and isinstance(v.value, str)
            ):
                task = v.value.rsplit(".", 1)[-1]
                sc.triggers[task] = "Celery beat"
                if jobscan.SWEEP_NAME.search(task):
                    sc.add(
                        Kind.CRON_SWEEPER,
                        "celery beat entry",
                        value.lineno,
                        value.end_lineno or value.lineno,
                        None,
                        Risk.MEDIUM,
                        f"Celery beat runs `{v.value}` on a timer (a sweeper by its name): "
                        "time-based recovery can run a job twice",
                        Fix("adapter", "cron-sweeper", False, "scheduled durable workflow"),
                    )


def scan_homemade_definitions(sc: PythonScanner) -> None:
    """Decorators (factories) whose inner wrapper loops over attempts of the wrapped call."""
    quals = {id(f): q for f, q, _ in sc.funcs}
    for loop in sc.loops:
        if len(loop.parents) < 2:
            continue
        func = loop.parents[0]
        qual = quals[id(func)]
        facts = sc._loop_facts(loop)
        if facts is None:
            continue
        calls_wrapped = any(
            isinstance(n, ast.Call)
            and any(isinstance(a, ast.Starred) for a in n.args)
            and any(kw.arg is None for kw in n.keywords)
            for n in _walk_local(facts.region)
        )
        if not calls_wrapped:
            continue
        sc.consumed.add(id(loop.node))
        if func.name in sc.homemade:
            continue
        sc.homemade[func.name] = qual
        sc.helpers.append(HelperDef(sc.module, func.name, qual, "a loop over attempts"))
        risk, reason = sc._retry_risk(facts.forever, facts.sleep, facts.catch, None, "")
        sc.add(
            Kind.RETRY_DECORATOR,
            "home-made retry decorator",
            func.lineno,
            func.end_lineno or func.lineno,
            qual,
            risk,
            reason,
            Fix(
                "manual",
                "@step",
                False,
                "replace the decorator with @step(retry=RetryPolicy(...)) at its use sites",
            ),
            refusal="home-made decorator: no codemod rewrites its definition",
        )


def scan_decorators(
    sc: PythonScanner, func: ast.FunctionDef | ast.AsyncFunctionDef, qual: str
) -> None:
    for dec in func.decorator_list:
        full = sc.resolve(dec)
        last = full.rsplit(".", 1)[-1]
        call = dec if isinstance(dec, ast.Call) else None
        lib = _DECORATORS.get(full)
        if lib is None and last == "retry" and full.split(".")[0] in ("tenacity", "backoff"):
            lib = full.split(".")[0]
        if lib is None and _CLASS_RETRY.search(full):
            lib = full.rsplit(".", 2)[-2]
        if (
            lib is None
            and full in ("dramatiq.actor", "dramatiq.actor.actor")
            and call is not None
            and any(k.arg in ("max_retries", "retry_when", "min_backoff") for k in call.keywords)
        ):
            lib = "dramatiq"
        if lib is not None:
            report_decorator(sc, func, qual, dec, call, lib, full)
        elif last in ("task", "shared_task") or full.endswith("celery.task"):
            report_celery(sc, func, qual, dec, call)
        elif dotted(call.func if call else dec).split(".")[0] in sc.homemade and (
            dotted(call.func if call else dec).split(".")[0] != func.name
        ):
            name = dotted(call.func if call else dec).split(".")[0]
            effects = sc.effects(func.body)
            risk, reason = sc._effects_risk(effects, Risk.MEDIUM, "home-made retry decorator")
            sc.add(
                Kind.RETRY_DECORATOR,
                f"@{name} (home-made)",
                dec.lineno,
                func.end_lineno or func.lineno,
                qual,
                risk,
                reason,
                sc._fix_for(effects, Fix("manual", "@step", False, "@step(retry=...)")),
                effects=effects,
            )
        elif last not in _NOT_HELPERS and full.split(".")[0] not in _NOT_HELPER_ROOTS:
            record_use(sc, func, qual, dec, full)
        if PERIODIC.search(full):
            sc.triggers[func.name] = f"@{dotted(call.func if call else dec)}"


def scan_facade(
    sc: PythonScanner,
    func: ast.FunctionDef | ast.AsyncFunctionDef,
    qual: str,
    parents: list[ast.AST],
) -> None:
    """A project function that wraps a callable with a retry library (a facade)."""
    nodes = sc.local_nodes(func)
    returns_decorator = any(
        isinstance(n, ast.Return)
        and isinstance(n.value, ast.Call)
        and sc.resolve(n.value) in _FACADE_TARGETS
        for n in nodes
    )
    if not (func.args.args or func.args.vararg or func.args.posonlyargs or returns_decorator):
        return
    lib_calls = {
        id(n): _FACADE_TARGETS[sc.resolve(n)]
        for n in nodes
        if isinstance(n, ast.Call) and sc.resolve(n) in _FACADE_TARGETS
    }
    if not lib_calls:
        return
    assigned = {
        t.id
        for n in nodes
        if isinstance(n, ast.Assign) and id(n.value) in lib_calls
        for t in n.targets
        if isinstance(t, ast.Name)
    }
    # Retrying(...)(fn, ...), return retry(...), r = Retrying(...); r(fn) / r.call(fn)
    applied = any(
        (isinstance(n, ast.Call) and id(n.func) in lib_calls)
        or (isinstance(n, ast.Return) and n.value is not None and id(n.value) in lib_calls)
        or (
            isinstance(n, ast.Call)
            and dotted(n.func).split(".")[0] in assigned
            and bool(n.args or n.keywords)
        )
        for n in nodes
    )
    if not applied:
        return
    lib = next(iter(lib_calls.values()))
    func, qual = sc._outermost(func, qual, parents)
    if func.name in sc.homemade:
        return
    sc.homemade[func.name] = qual
    sc.helpers.append(HelperDef(sc.module, func.name, qual, f"wraps {lib}"))
    sc.add(
        Kind.RETRY_DECORATOR,
        f"project retry helper over {lib}",
        min([func.lineno] + [d.lineno for d in func.decorator_list]),
        func.end_lineno or func.lineno,
        qual,
        Risk.MEDIUM,
        f"the project's own retry helper over {lib}: every use site retries",
        Fix("manual", "@step", False, "make the helper a durable step policy, then its uses"),
        refusal=f"project facade over {lib}: no codemod rewrites it",
        why=(
            f"`{func.name}` wraps callables in a {lib} retry; each place that uses it is "
            "listed under it and ranked by what the wrapped code does.",
        ),
    )


def scan_celery_helper(
    sc: PythonScanner,
    func: ast.FunctionDef | ast.AsyncFunctionDef,
    qual: str,
    parents: list[ast.AST],
) -> None:
    """``task.retry(countdown=...)`` called from a helper that receives the task."""
    if any(
        dotted(d.func if isinstance(d, ast.Call) else d).rsplit(".", 1)[-1]
        in ("task", "shared_task")
        for d in func.decorator_list
    ):
        return
    params = {a.arg for a in [*func.args.posonlyargs, *func.args.args, *func.args.kwonlyargs]}
    calls = [
        n
        for n in sc.local_nodes(func)
        if isinstance(n, ast.Call)
        and isinstance(n.func, ast.Attribute)
        and n.func.attr == "retry"
        and (
            dotted(n.func.value) in params
            or "task" in dotted(n.func.value).rsplit(".", 1)[-1].lower()
        )
        and any(k.arg in ("countdown", "exc", "max_retries", "eta", "throw") for k in n.keywords)
    ]
    if not calls:
        return
    retry_at = min(c.lineno for c in calls)
    before = [
        n
        for n in sc.local_nodes(func)
        if isinstance(n, ast.Call) and n.lineno < retry_at and n not in calls
    ]
    effects = sc.effects(before)
    risk, reason = sc._retry_risk(False, "exponential", "specific", effects, "celery")
    func, qual = sc._outermost(func, qual, parents)
    owner = sc.func_class.get(id(func))
    name = owner if owner and func.name.startswith("__") else func.name
    sc.helpers.append(HelperDef(sc.module, name, qual, "Celery task.retry"))
    sc.add(
        Kind.CELERY_RETRY,
        "celery task.retry from a helper",
        func.lineno,
        func.end_lineno or func.lineno,
        qual,
        risk,
        reason,
        Fix("manual", "@step", False, "the task becomes a durable workflow step"),
        refusal="Celery task retries: no codemod",
        effects=effects,
    )


def scan_retry_kwargs(sc: PythonScanner) -> None:
    """A retry policy handed to a client: ``HTTPAdapter(max_retries=Retry(...))``,
    ``Config(retries={...})``, ``retry=Retry(...)``, ``retry_decorator=AWSRetry...``."""
    seen: set[int] = set()
    for n in sc.nodes:
        if not isinstance(n, ast.Call):
            continue
        callee = sc.resolve(n)
        if callee.split(".")[0] in _LIB_ROOTS or callee in _DECORATORS:
            continue  # the library's own arguments (tenacity's retry=retry_if_...)
        for kw in n.keywords:
            if kw.arg not in _RETRY_KWARGS:
                continue
            value = kw.value
            what = ""
            if isinstance(value, ast.Call):
                name = sc.resolve(value)
                last = name.rsplit(".", 1)[-1]
                if name.split(".")[0] in _LIB_ROOTS - {"google"} or last.startswith(
                    ("retry_if", "retry_any", "retry_all", "retry_unless")
                ):
                    continue
                if last == "RetryPolicy" or name.split(".")[0] in ("toolkit", "adapters"):
                    continue  # durable-toolkit's own policy: already migrated, not a hotspot
                if "Retry" in name or "retry" in last.lower():
                    what = dotted(value.func)
            elif isinstance(value, ast.Dict) and kw.arg == "retries":
                what = "retries={...}"
            elif (
                kw.arg == "max_retries"
                and dotted(n.func).rsplit(".", 1)[-1] == "HTTPAdapter"
                and not (isinstance(value, ast.Constant) and value.value in (0, None, False))
            ):
                what = "HTTPAdapter(max_retries=...)"
            if not what or n.lineno in seen:
                continue
            seen.add(n.lineno)
            sc.add(
                Kind.RETRY_DECORATOR,
                "retry policy handed to a client",
                n.lineno,
                n.end_lineno or n.lineno,
                None,
                Risk.MEDIUM,
                f"`{dotted(n.func)}` gets a retry policy ({what}): every call through it "
                "is retried",
                Fix("manual", "@step", False, "retry in the calling step instead"),
                refusal="client-level retry configuration: no codemod",
                why=(
                    f"The client built here retries its calls ({what}); calls that create, "
                    "charge or delete through it are repeated too unless they carry an "
                    "idempotency key.",
                ),
                node=n,
            )


#: call forms that retry the function they are given at once
_RETRY_CALLS = {"retry.api.retry_call": "retry", "retry.retry_call": "retry"}


def scan_retry_calls(sc: PythonScanner) -> None:
    """``retry_call(f, fargs, ...)``: one call retried where it is made."""
    for n in sc.nodes:
        if not isinstance(n, ast.Call):
            continue
        lib = _RETRY_CALLS.get(sc.resolve(n))
        if lib is None or not n.args:
            continue
        target = ast.unparse(n.args[0])
        sc.add(
            Kind.RETRY_DECORATOR,
            f"{lib} retry_call",
            n.lineno,
            n.end_lineno or n.lineno,
            None,
            Risk.LOW,
            f"`{target}` called under a {lib} retry policy (retry_call): this call retries",
            Fix("manual", "@step", False, f"step(retry=RetryPolicy(...))({target})(...)"),
            why=(f"retry_call retries `{target}` here with the policy its arguments give.",),
            node=n,
        )


def scan_module_retry_objects(sc: PythonScanner) -> None:
    """``patient = tenacity.retry(...)`` at module level: a decorator the module reuses."""
    for stmt in sc.tree.body:
        if not (
            isinstance(stmt, ast.Assign)
            and isinstance(stmt.value, ast.Call)
            and len(stmt.targets) == 1
            and isinstance(stmt.targets[0], ast.Name)
        ):
            continue
        name = stmt.targets[0].id
        inner = stmt.value.func
        applied = _FACADE_TARGETS.get(sc.resolve(inner)) if isinstance(inner, ast.Call) else None
        if applied is not None and stmt.value.args:
            target = ast.unparse(stmt.value.args[0])
            sc.add(
                Kind.RETRY_DECORATOR,
                f"{applied} retry applied to a function",
                stmt.lineno,
                stmt.end_lineno or stmt.lineno,
                None,
                Risk.LOW,
                f"`{name}` is `{target}` wrapped in a {applied} retry: every call retries",
                Fix("manual", "@step", False, f"{name} = step(retry=RetryPolicy(...))({target})"),
                why=(f"`{name}` calls `{target}` under a {applied} retry policy.",),
            )
            continue
        lib = _FACADE_TARGETS.get(sc.resolve(stmt.value))
        if lib is None:
            continue
        sc.homemade.setdefault(name, name)
        sc.helpers.append(HelperDef(sc.module, name, name, f"a {lib} retry object"))
        sc.add(
            Kind.RETRY_DECORATOR,
            f"{lib} retry object",
            stmt.lineno,
            stmt.end_lineno or stmt.lineno,
            None,
            Risk.LOW,
            f"a shared {lib} retry policy (`{name}`): every use retries",
            Fix("manual", "@step", False, "@step(retry=RetryPolicy(...)) at its uses"),
            why=(
                f"`{name}` is a {lib} retry policy kept at module level; each function it "
                "decorates is listed and ranked by what it does.",
            ),
        )


def record_use(
    sc: PythonScanner,
    func: ast.FunctionDef | ast.AsyncFunctionDef,
    qual: str,
    dec: ast.expr,
    full: str,
) -> None:
    """Remember a decorator that may be a project retry helper (matched after all files)."""
    label = dotted(dec.func if isinstance(dec, ast.Call) else dec)
    if "?" in label or "()" in label:
        return
    end = func.end_lineno or func.lineno
    sc.uses.append(
        UseSite(
            sc.path,
            full,
            label,
            dec.lineno,
            end,
            max(0, dec.col_offset - 1),
            qual,
            _excerpt(sc.lines, dec.lineno, end),
            sc.effects(func.body),
        )
    )


def report_decorator(
    sc: PythonScanner,
    func: ast.FunctionDef | ast.AsyncFunctionDef,
    qual: str,
    dec: ast.expr,
    call: ast.Call | None,
    lib: str,
    full: str,
) -> None:
    kw = {k.arg: k.value for k in (call.keywords if call else []) if k.arg}
    args = call.args if call else []
    forever, sleep, catch = False, "exponential", "specific"
    refusal: str | None = None
    selector: str | None = None
    if lib == "tenacity":
        selector = "tenacity"
        forever = "stop" not in kw
        sleep = "exponential" if "wait" in kw else "none"
        retry_kw = kw.get("retry")
        catch = "broad" if retry_kw is None else "specific"
        if retry_kw is not None and re.search(r"result", ast.unparse(retry_kw)):
            refusal = "retry decided by the result (polling), not by an exception"
    elif full == "backoff.on_predicate":
        selector = "backoff"
        refusal = "backoff.on_predicate is reported, not rewritten"
        forever = "max_tries" not in kw and "max_time" not in kw
    elif lib == "backoff":
        selector = "backoff"
        forever = "max_tries" not in kw and "max_time" not in kw
        if len(args) > 1 and sc._broad(args[1]):
            catch = "broad"
        wait = sc.resolve(args[0]) if args else ""
        if wait and wait not in ("backoff.expo", "backoff.constant", "backoff.fibo"):
            refusal = f"wait generator `{dotted(args[0])}` has no RetryPolicy equivalent"
    elif lib == "retrying":
        forever = "stop_max_attempt_number" not in kw and "stop_max_delay" not in kw
        sleep = "exponential" if any(k.startswith("wait") for k in kw) else "none"
        catch = "specific" if "retry_on_exception" in kw else "broad"
    elif lib == "retry":
        tries = kw.get("tries") or (args[1] if len(args) > 1 else None)
        forever = tries is None or (
            isinstance(tries, ast.UnaryOp)
            or (isinstance(tries, ast.Constant) and tries.value == -1)
        )
        sleep = "exponential" if "delay" in kw or len(args) > 2 else "none"
        exc = kw.get("exceptions") or (args[0] if args else None)
        catch = "broad" if exc is None or sc._broad(exc) else "specific"
    elif lib == "stamina":
        exc = kw.get("on") or (args[0] if args else None)
        catch = "broad" if exc is None or sc._broad(exc) else "specific"
    elif lib == "oslo.service" and full.endswith("RetryDecorator"):
        selector = "framework-retry"
        count = kw.get("max_retry_count") or (args[0] if args else None)
        forever = count is None or (
            isinstance(count, ast.UnaryOp) and ast.unparse(count).replace(" ", "") == "-1"
        )
        sleep = "other"  # inc_sleep_time * n, capped
        catch = "specific"
    elif lib == "oslo.utils":
        forever, catch = True, "broad"
    elif lib == "dramatiq":
        catch = "specific"  # the broker keeps the message; its middleware decides
    elif lib == "oslo.db":
        forever = False
        catch = "specific"
    effects = sc.effects(func.body)
    risk, reason = sc._retry_risk(forever, sleep, catch, effects, lib)
    if selector and refusal is None:
        fix = Fix("codemod", selector, True, f"durable codemod --select {selector}")
    elif selector:
        fix = Fix("codemod", selector, False, f"the {selector} codemod refuses: {refusal}")
    else:
        refusal = f"no codemod for `{lib}`"
        fix = Fix("manual", "@step", False, f"replace @{dotted(call.func if call else dec)} "
                  "with @step(retry=RetryPolicy(...))")  # fmt: skip
    fix = sc._fix_for(effects, fix)
    start = dec.lineno
    dec_end = dec.end_lineno or dec.lineno
    sc.add(
        Kind.RETRY_DECORATOR,
        f"{lib} @{dotted(call.func if call else dec)}",
        start,
        func.end_lineno or start,
        qual,
        risk,
        reason,
        fix,
        refusal=refusal,
        effects=effects,
        removable=dec_end - start + 1,
    )


def report_celery(
    sc: PythonScanner,
    func: ast.FunctionDef | ast.AsyncFunctionDef,
    qual: str,
    dec: ast.expr,
    call: ast.Call | None,
) -> None:
    kw = {k.arg: k.value for k in (call.keywords if call else []) if k.arg}
    self_retry = [
        n
        for n in sc.local_nodes(func)
        if isinstance(n, ast.Call) and dotted(n.func).endswith("self.retry")
    ]
    if "autoretry_for" not in kw and not self_retry:
        return
    max_retries = kw.get("max_retries")
    for n in self_retry:
        for k in n.keywords:
            if k.arg == "max_retries":
                max_retries = k.value
    forever = isinstance(max_retries, ast.Constant) and max_retries.value is None
    auto = kw.get("autoretry_for")
    catch = "broad" if auto is not None and sc._broad(auto) else "specific"
    retry_at = min((n.lineno for n in self_retry), default=0)
    if retry_at and auto is None:
        # what runs again is the code before the retry point, not what follows it
        before = [
            n
            for n in sc.local_nodes(func)
            if isinstance(n, ast.Call) and n.lineno < retry_at and n not in self_retry
        ]
        effects = sc.effects(before)
    else:
        effects = sc.effects(func.body)
    risk, reason = sc._retry_risk(forever, "exponential", catch, effects, "celery")
    pattern = "celery autoretry_for" if auto is not None else "celery sc.retry"
    sc.add(
        Kind.CELERY_RETRY,
        pattern,
        dec.lineno,
        func.end_lineno or dec.lineno,
        qual,
        risk,
        reason,
        sc._fix_for(
            effects,
            Fix(
                "manual",
                "@step",
                False,
                "run the task body as a durable workflow; its retry options become a RetryPolicy",
            ),
        ),
        refusal="Celery task retries: no codemod",
        effects=effects,
    )

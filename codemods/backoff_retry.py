"""Codemod ``backoff``: ``@backoff.on_exception(...)`` becomes a step.

Mapped: the wait generators ``backoff.expo`` (``base``, ``factor``,
``max_value``), ``backoff.constant`` (``interval``) and ``backoff.fibo``
(approximated by ``backoff=1.618``); ``max_tries``; ``max_time``;
``jitter`` (``full_jitter``, the default, becomes ``full_jitter=True``, or
``random_delay=interval`` for ``backoff.constant``; ``random_jitter`` becomes
``random_delay=1.0``; ``jitter=None`` none: all exact); ``giveup=lambda e: isinstance(e, X)``;
``raise_on_giveup=True``. Logging options are dropped with a note. Hooks
(``on_success``; ``on_backoff`` and ``on_giveup`` reading other than ``tries``,
``elapsed``, ``wait``, ``exception``, ``args``, ``kwargs``: the reason names what it reads),
other ``giveup`` predicates and ``raise_on_giveup=False`` keep the decorator (reported as ``kept``).
``@backoff.on_predicate`` retries on a returned value (``retry_on_result``). The call
forms (``d = on_exception(...)``, ``on_exception(...)(fn)``, ``return on_exception(...)``)
are sites too: rewritten in place when the policy is constant, else listed as a retry
factory or engine.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import libcst as cst
import libcst.matchers as m

from ._decorators import DecoratorCodemod, Kept, NotRewritten, Rewrite, name_uses
from ._policy import Policy

LIB = "backoff"
_GOLDEN = 1.618
_LOGGING = ("logger", "backoff_log_level", "giveup_log_level")
_HOOKS = ("on_success",)
#: what a backoff ``details`` key becomes, read from the hook's ``toolkit.RetryState``
_FROM_STATE = {
    "tries": "state.attempt",
    "elapsed": "state.elapsed",
    "exception": "state.exception",
    "wait": "state.delay",
}
_GIVEUP_KEYS = ("tries", "elapsed", "exception", "args", "kwargs")
_BACKOFF_KEYS = ("tries", "elapsed", "wait", "exception", "args", "kwargs")


def _subscripts(param: str, body: str, keys: Sequence[str]) -> list[tuple[str, str]]:
    """``(quote, key)`` of each ``param['key']`` in ``body`` with a key of ``keys``."""
    alternatives = "|".join(keys)
    return re.findall(rf"\b{re.escape(param)}\s*\[\s*(['\"])({alternatives})\1\s*\]", body)


_WAIT_KWARGS = {
    "expo": ("base", "factor", "max_value"),
    "constant": ("interval",),
    "fibo": ("max_value",),
}


class BackoffCodemod(DecoratorCodemod):
    """Rewrite ``@backoff.on_exception`` decorators into durable steps."""

    SELECTOR = "backoff"
    LIBRARY = LIB
    DESCRIPTION = "Rewrite backoff.on_exception decorators into durable steps."

    def __init__(self, context: Any, annotate: bool = False) -> None:
        super().__init__(context, annotate)
        #: an on_giveup handler that gets ``raise details['exception']`` at its end, once
        #: the site it serves is recorded as rewritten: (scope, name, the statement)
        self.giveup_candidate: tuple[cst.CSTNode, str, str] | None = None
        self.giveup_rewrites: list[tuple[cst.CSTNode, str, str]] = []
        #: the call form being read (``return on_exception(...)``, ...), or "" for a decorator
        self.call_form = ""

    def record(
        self,
        node: cst.CSTNode,
        action: Any,
        reason: str,
        notes: tuple[str, ...] | list[str] = (),
        policy: str = "",
        end: cst.CSTNode | None = None,
    ) -> None:
        super().record(node, action, reason, notes, policy, end)
        candidate = self.giveup_candidate
        if (
            action == "rewritten"
            and candidate is not None
            and all(done[1] != candidate[1] for done in self.giveup_rewrites)
        ):
            self.giveup_rewrites.append(candidate)
        self.giveup_candidate = None

    def _end_handlers(self, scope: cst.CSTNode, body: Sequence[Any]) -> list[Any]:
        """``body`` with each handler of ``giveup_rewrites`` defined in ``scope`` ending
        in the re-raise backoff did after it."""
        ends = {name: stmt for where, name, stmt in self.giveup_rewrites if where is scope}
        out: list[Any] = []
        for stmt in body:
            if isinstance(stmt, cst.FunctionDef) and stmt.name.value in ends:
                comment = cst.EmptyLine(
                    comment=cst.Comment(
                        "# durable: backoff raised the exception after this hook; so does it now"
                    )
                )
                added = cst.parse_statement(ends[stmt.name.value]).with_changes(
                    leading_lines=[comment]
                )
                stmt = stmt.with_changes(body=stmt.body.with_changes(body=[*stmt.body.body, added]))
            out.append(stmt)
        return out

    def leave_Module(self, original_node: cst.Module, updated_node: cst.Module) -> cst.Module:
        if any(where is original_node for where, _n, _s in self.giveup_rewrites):
            updated_node = updated_node.with_changes(
                body=self._end_handlers(original_node, updated_node.body)
            )
        return super().leave_Module(original_node, updated_node)

    def match(self, decorator: cst.Decorator) -> Callable[[], Rewrite] | None:
        target = decorator.decorator
        name = self.call_name(target, LIB)
        if name == "on_predicate":
            return lambda: self._on_predicate(target)
        if name != "on_exception" or not isinstance(target, cst.Call):
            return None
        return lambda: self.policy(target)

    # -- call forms: return on_exception(...), on_exception(...)(fn), d = on_exception(...)
    def _call_rewrite(self, call: cst.BaseExpression) -> Callable[[], Rewrite] | None:
        name = self.call_name(call, LIB)
        if name == "on_predicate":
            return lambda: self._on_predicate(call)
        if name == "on_exception" and isinstance(call, cst.Call):
            return lambda: self.policy(call)
        return None

    def _read_call_form(
        self, node: cst.CSTNode, call: cst.BaseExpression, form: str
    ) -> cst.Call | None:
        rewrite = self._call_rewrite(call)
        if rewrite is None:
            return None
        self.call_form = form
        try:
            return self.step_call(node, rewrite, form)
        finally:
            self.call_form = ""

    def leave_Return(self, original_node: cst.Return, updated_node: cst.Return) -> cst.Return:
        """``return backoff.on_exception(...)``: a factory handing out backoff's decorator
        hands out the step decorator instead, when its policy is constant."""
        value = original_node.value
        if not isinstance(value, cst.Call) or isinstance(value.func, cst.Call):
            return updated_node  # `return on_exception(...)(f)`: a call form, one site
        made = self._read_call_form(original_node, value, "return backoff.on_exception(...)")
        return updated_node if made is None else updated_node.with_changes(value=made)

    def leave_Assign(self, original_node: cst.Assign, updated_node: cst.Assign) -> cst.Assign:
        """``retry_policy = backoff.on_exception(...)``, a decorator bound to a name."""
        value = original_node.value
        if not isinstance(value, cst.Call) or isinstance(value.func, cst.Call):
            return updated_node
        made = self._read_call_form(original_node, value, "name = backoff.on_exception(...)")
        return updated_node if made is None else updated_node.with_changes(value=made)

    def leave_Call(self, original_node: cst.Call, updated_node: cst.Call) -> cst.BaseExpression:
        """``backoff.on_exception(...)(fn)``: the step made of ``fn``; a ``fn`` the enclosing
        function's callers pass in is a retry engine."""
        inner = original_node.func
        if not isinstance(inner, cst.Call) or isinstance(inner.func, cst.Call):
            return updated_node  # `on_exception(...)(f)(x)`: the site is `on_exception(...)(f)`
        if self._call_rewrite(inner) is None:
            return updated_node
        first = original_node.args[0].value if original_node.args else None
        engine = self.engine_reason("backoff", first)
        if engine is not None:
            self.record(original_node, "skipped", engine)
            return updated_node
        made = self._read_call_form(original_node, inner, "backoff.on_exception(...)(fn)")
        return updated_node if made is None else updated_node.with_changes(func=made)

    def _on_predicate(self, call: cst.BaseExpression) -> Rewrite:
        """``on_predicate(wait_gen, predicate=operator.not_, ...)``: retry on a returned
        value; when tries run out backoff returns the last value (``on_give_up``)."""
        if not isinstance(call, cst.Call):
            raise NotRewritten("bare @on_predicate")
        positional = [a for a in call.args if a.keyword is None]
        predicate = "lambda value: not value"
        if len(positional) == 2:
            predicate = self.code(positional[1].value)
            call = call.with_changes(args=[a for a in call.args if a is not positional[1]])
        kwargs = {a.keyword.value: a.value for a in call.args if a.keyword is not None}
        if "on_backoff" in kwargs:
            raise Kept(
                f"on_backoff={self.code(kwargs['on_backoff'])} on on_predicate reads the"
                " returned value from its details: adapt it by hand"
            )
        if "on_giveup" in kwargs:
            raise Kept(
                f"on_giveup={self.code(kwargs['on_giveup'])} on on_predicate gets the last"
                " value, and its on_give_up already returns that value: adapt it by hand"
            )
        if "predicate" in kwargs:
            predicate = self.code(kwargs["predicate"])
            call = call.with_changes(
                args=[a for a in call.args if a.keyword is None or a.keyword.value != "predicate"]
            )
        if predicate in ("operator.not_", "not_"):
            predicate = "lambda value: not value"
        with_types = call.with_changes(args=[call.args[0], cst.Arg(cst.Tuple([])), *call.args[1:]])
        policy, notes = self.policy(with_types)
        policy.retry_on = []
        policy.retry_on_result = predicate
        policy.on_give_up = "lambda state: state.result"
        notes.append(
            "exceptions are not retried, as before; when tries run out the last value"
            " is returned, as before (on_give_up)"
        )
        return policy, notes

    def policy(self, call: cst.Call) -> Rewrite:
        """Map the arguments of ``backoff.on_exception(...)`` to a policy."""
        positional = [a for a in call.args if a.keyword is None]
        starred = [a for a in call.args if a.star]
        if starred and self.call_form.startswith("return"):
            shown = ", ".join(f"{a.star}{self.code(a.value)}" for a in starred)
            raise Kept(
                f"a retry factory: `{self.functions[-1].name.value}` returns backoff's"
                f" decorator, whose policy comes from its callers ({shown})"
            )
        if starred or len(positional) != 2:
            raise Kept("on_exception needs its wait generator and exceptions as arguments")
        wait_gen, exceptions = positional[0].value, positional[1].value
        kwargs = {a.keyword.value: a.value for a in call.args if a.keyword is not None}
        gen = self.call_name(wait_gen, LIB)
        if gen not in _WAIT_KWARGS or isinstance(wait_gen, cst.Call):
            raise Kept(f"wait generator {self.code(wait_gen)} has no equivalent")
        notes: list[str] = []
        self.giveup_candidate = None
        policy = Policy(max_attempts=None, retry_on=self.exception_types(exceptions))
        jitter = "full"  # backoff's default, full_jitter
        for name, value in kwargs.items():
            if name == "on_giveup":
                policy.on_give_up = self._on_giveup(value, kwargs, notes)
                continue
            if name == "on_backoff":
                policy.before_retry = self._on_backoff(value, notes)
                continue
            if name in _HOOKS:
                raise Kept(f"option `{name}=` has no equivalent")
            if name in _LOGGING:
                notes.append(f"logging option `{name}=` dropped")
            elif name == "max_tries":
                tries = self._runtime(value, name, policy, "max_attempts", notes)
                policy.max_attempts = 3 if tries is None else int(tries)
                self._keep_name(policy, "max_attempts", value)
            elif name == "max_time":
                seconds = self._runtime(value, name, policy, "max_elapsed", notes)
                policy.max_elapsed = 60.0 if seconds is None else seconds
                self._keep_name(policy, "max_elapsed", value)
            elif name == "jitter":
                jitter = self._jitter(value)
            elif name == "giveup":
                try:
                    policy.give_up_on = self._giveup(value)
                except Kept:
                    policy.retry_if = self._not(value)
            elif name == "raise_on_giveup":
                if not (isinstance(value, cst.Name) and value.value == "True"):
                    raise Kept(f"raise_on_giveup={self.code(value)} has no equivalent")
            elif name not in _WAIT_KWARGS[gen]:
                raise Kept(f"option `{name}=` has no equivalent")
        # full_jitter: uniform(0, d), as full_jitter=True draws; random_jitter: d plus
        # random.random(), as random_delay=1.0 adds (after the cap, as backoff did)
        policy.full_jitter = jitter == "full"
        policy.random_delay = 1.0 if jitter == "random" else 0.0

        def wait_arg(name: str, default: float | None) -> float | None:
            if name not in kwargs:
                return default
            field = {"factor": "initial_delay", "interval": "initial_delay"}.get(name, "")
            if not field:
                return self.number(kwargs[name], name)
            value = self._runtime(kwargs[name], name, policy, field, notes)
            return 1.0 if value is None else value

        if gen == "expo":
            policy.initial_delay = wait_arg("factor", 1.0) or 0.0
            policy.backoff = wait_arg("base", 2.0) or 2.0
            policy.max_delay = wait_arg("max_value", None)
        elif gen == "constant":
            policy.initial_delay = wait_arg("interval", 1.0) or 0.0
            policy.backoff = 1.0
            if policy.full_jitter:
                # full jitter of a constant wait: uniform(0, interval), exactly
                policy.random_delay, policy.initial_delay = policy.initial_delay, 0.0
                policy.full_jitter = False
        else:
            policy.initial_delay, policy.backoff = 1.0, _GOLDEN
            policy.max_delay = wait_arg("max_value", None)
            notes.append("fibonacci delays approximated by backoff=1.618")
        if policy.max_attempts is None and policy.max_elapsed is None:
            notes.append("retries forever, as before")
        if policy.runtime:
            if "random_delay" in policy.runtime or (
                policy.random_delay and "initial_delay" in policy.runtime
            ):
                raise Kept("a full jitter of a run-time interval has no equivalent")
            notes.append(
                "the step is defined in the function: its policy uses run-time values, read"
                " each time the function runs, as backoff's decorator did"
            )
        return policy, notes

    # -- run-time values on a nested function ------------------------------------
    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        self.functions.append(node)
        return True

    def leave_FunctionDef(
        self, original_node: cst.FunctionDef, updated_node: cst.FunctionDef
    ) -> cst.FunctionDef:
        try:
            updated_node = super().leave_FunctionDef(original_node, updated_node)
            if any(where is original_node.body for where, _n, _s in self.giveup_rewrites):
                body = self._end_handlers(original_node.body, updated_node.body.body)
                updated_node = updated_node.with_changes(
                    body=updated_node.body.with_changes(body=body)
                )
            return updated_node
        finally:
            self.functions.pop()

    def _runtime(
        self,
        expr: cst.BaseExpression,
        option: str,
        policy: Policy,
        field: str,
        notes: list[str],
    ) -> float | None:
        """The constant value of ``expr``; or, on a function defined inside another one
        (the decorator is evaluated each time that one runs, and so is the step's), ``None``
        with ``expr``'s source kept in ``policy.sources[field]``."""
        try:
            return self.number(expr, option)
        except Kept as exc:
            nesting = 1 if self.call_form else 2
            if len(self.functions) < nesting or "known only at run time" not in str(exc):
                raise
        text = " ".join(self.code(expr).split())
        if self.call_form.startswith("return"):
            raise Kept(
                f"a retry factory: `{self.functions[-1].name.value}` returns backoff's"
                f" decorator, whose policy comes from its callers ({option}={text})"
            )
        if not self.call_form:
            outer, inner = self.functions[-2], self.functions[-1]
            returned = rf"\breturn\s+{re.escape(inner.name.value)}\s*(#.*)?$"
            if re.search(returned, self.code(outer), re.MULTILINE):
                raise Kept(
                    f"a retry factory: `{outer.name.value}` returns `{inner.name.value}`, whose"
                    f" policy comes from its callers ({option}={text})"
                )
        if isinstance(expr, cst.Lambda):
            raise Kept(f"{option}={text} is a function backoff calls on each call")
        policy.sources[field] = f"({text})" if " if " in text else text
        policy.runtime.add(field)
        if field == "max_attempts":
            notes.append(
                f"a count below 1 at run time (`{text}` < 1) retried forever under backoff;"
                " RetryPolicy raises ValueError for it"
            )
        else:
            notes.append(f"a negative `{text}` at run time: RetryPolicy raises ValueError for it")
        if isinstance(expr, cst.Name | cst.Attribute):
            notes.append(
                f"backoff also took a function for {option}= (calling it on each call);"
                f" RetryPolicy needs the number `{text}` holds"
            )
        return None

    def _on_giveup(
        self, value: cst.BaseExpression, kwargs: dict[str, cst.BaseExpression], notes: list[str]
    ) -> str:
        """``on_give_up`` for ``on_giveup=handler``. backoff calls the handler with a
        details dict when the tries run out (also when ``giveup`` says so), then re-raises
        the exception; ``RetryPolicy.on_give_up`` gets a ``toolkit.RetryState`` when the
        budget runs out and its value becomes the result. So: no ``giveup=``; a function
        defined here reading only ``details['tries']``, ``['elapsed']``,
        ``['exception']``, ``['args']``, ``['kwargs']`` (passed as a dict built from the
        state and ``current_step()``); it must raise at its end, else
        ``raise details['exception']`` is added there (what backoff did next)."""
        handler = self.code(value)
        if not isinstance(value, cst.Name):
            raise Kept(
                f"on_giveup={handler} runs before backoff re-raises the exception;"
                " RetryPolicy.on_give_up's value would replace it: adapt it by hand"
            )
        name = value.value
        found = self._function_beside(name)
        if found is None:
            raise Kept(
                f"on_giveup={handler} is not one function defined beside it; backoff re-raises"
                " after it, RetryPolicy.on_give_up's value would replace the exception"
            )
        scope, function = found
        if re.search(r"\[\s*['\"]target['\"]\s*\]", self.code(function)):
            raise Kept(
                f"on_giveup={handler} reads details['target'], the decorated function, which"
                " a toolkit.RetryState does not carry"
            )
        if "giveup" in kwargs:
            raise Kept(
                f"on_giveup={handler} also ran when giveup= gave up at once;"
                " RetryPolicy.on_give_up runs only when the attempts run out"
            )
        params = function.params
        if (
            len(params.params) != 1
            or params.kwonly_params
            or params.posonly_params
            or isinstance(params.star_arg, cst.Param)
            or params.star_kwarg is not None
            or function.decorators
            or function.asynchronous is not None
        ):
            raise Kept(f"on_giveup={handler} does not take backoff's details as its one parameter")
        param = params.params[0].name.value
        body = self.code(function.body)
        subscripts = _subscripts(param, body, _GIVEUP_KEYS)
        keys = sorted({key for _quote, key in subscripts})
        if len(re.findall(rf"\b{re.escape(param)}\b", body)) != len(subscripts):
            raise Kept(
                f"on_giveup={handler} reads `{param}` other than as {param}['tries'],"
                f" {param}['elapsed'], {param}['exception'], {param}['args'] or"
                f" {param}['kwargs'], the parts a toolkit.RetryState and the step's context"
                " carry"
            )
        uses = name_uses(self.source_module, name)
        as_hook = len(
            re.findall(rf"\bon_giveup\s*=\s*{re.escape(name)}\b", self.source_module.code)
        )
        if uses != as_hook or "raise_on_giveup" in self.source_module.code:
            raise Kept(
                f"on_giveup={handler}: `{name}` is used elsewhere too (or with"
                " raise_on_giveup=), so it cannot be adapted"
            )
        if m.findall(function.body, m.Return()) or m.findall(function.body, m.Yield()):
            raise Kept(
                f"on_giveup={handler} returns early; backoff re-raised the exception after it,"
                " RetryPolicy.on_give_up's value would replace it: adapt it by hand"
            )
        statements = list(function.body.body)
        last = statements[-1] if statements else None
        raises = (
            isinstance(last, cst.SimpleStatementLine)
            and len(last.body) == 1
            and isinstance(last.body[0], cst.Raise)
            and last.body[0].exc is not None
        )
        wanted = keys if raises else sorted({*keys, "exception"})
        parts = self._details(wanted)
        if not raises:
            quote = subscripts[0][0] if subscripts else '"'
            self.giveup_candidate = (scope, name, f"raise {param}[{quote}exception{quote}]")
            notes.append(
                f"on_giveup={name}: backoff re-raised the exception after it, so"
                f" `raise {param}[{quote}exception{quote}]` ends it now (on_give_up's value"
                " would replace the exception)"
            )
        notes.append(
            f"on_giveup={name} is called by on_give_up with a dict built from the step's"
            f" RetryState ({', '.join(wanted) or 'nothing'})"
        )
        self._details_notes(param, keys, notes)
        return f"lambda state: {name}({{{parts}}})"

    def _details(self, keys: Sequence[str]) -> str:
        """The entries of a backoff ``details`` dict, built from a RetryState and the
        step's context (the call's arguments, as passed)."""
        parts = []
        for key in keys:
            if key in ("args", "kwargs"):
                parts.append(f'"{key}": {self.need_current_step()}().{key}')
            else:
                parts.append(f'"{key}": {_FROM_STATE[key]}')
        return ", ".join(parts)

    @staticmethod
    def _details_notes(param: str, keys: Sequence[str], notes: list[str]) -> None:
        if "elapsed" in keys:
            notes.append(
                f"{param}['elapsed'] is the RetryState's: the seconds since the first attempt"
                " counted after the last attempt, where backoff counted them before it"
            )

    def _on_backoff(self, value: cst.BaseExpression, notes: list[str]) -> str:
        """``before_retry`` for ``on_backoff=handler``: backoff called the handler with
        a details dict after a failed attempt it retries, before the wait, as
        ``before_retry`` is called with a RetryState. The handler is one function of
        one parameter defined beside the decorator (or a one-parameter lambda) reading
        only ``tries``, ``elapsed``, ``wait``, ``exception``, ``args`` and ``kwargs``
        by subscript; it is called with a dict built from them."""
        handler = self.code(value)
        if isinstance(value, cst.Lambda):
            params = value.params
            body = self.code(value.body)
            callee = f"({handler})"
        elif isinstance(value, cst.Name):
            found = self._function_beside(value.value)
            if found is None:
                raise Kept(f"on_backoff={handler} is not one function defined beside it")
            function = found[1]
            if function.decorators or function.asynchronous is not None:
                raise Kept(f"on_backoff={handler} is decorated or async")
            params = function.params
            body = self.code(function.body)
            callee = handler
        else:
            raise Kept(f"on_backoff={handler} is not a function defined beside the decorator")
        if (
            len(params.params) != 1
            or params.kwonly_params
            or params.posonly_params
            or isinstance(params.star_arg, cst.Param)
            or params.star_kwarg is not None
        ):
            raise Kept(f"on_backoff={handler} does not take backoff's details as its one parameter")
        param = params.params[0].name.value
        if re.search(rf"\b{re.escape(param)}\s*\[\s*['\"]target['\"]\s*\]", body):
            raise Kept(
                f"on_backoff={handler} reads {param}['target'], the decorated function, which"
                " a toolkit.RetryState does not carry"
            )
        subscripts = _subscripts(param, body, _BACKOFF_KEYS)
        if len(re.findall(rf"\b{re.escape(param)}\b", body)) != len(subscripts):
            raise Kept(
                f"on_backoff={handler} reads `{param}` other than as {param}['tries'],"
                f" ['elapsed'], ['wait'], ['exception'], ['args'] or ['kwargs'], the parts a"
                " toolkit.RetryState and the step's context carry"
            )
        keys = sorted({key for _quote, key in subscripts})
        notes.append(
            f"on_backoff={handler} is called by before_retry with a dict built from the step's"
            f" RetryState and context ({', '.join(keys) or 'nothing'})"
        )
        self._details_notes(param, keys, notes)
        return f"lambda state: {callee}({{{self._details(keys)}}})"

    def _function_beside(self, name: str) -> tuple[Any, cst.FunctionDef] | None:
        """The one function ``name`` defined in the function around the decorated one, or
        else in the module: ``(the body or module holding it, the function)``."""
        scopes: list[Any] = [*([self.functions[-2].body] if len(self.functions) > 1 else [])]
        scopes.append(self.source_module)
        for scope in scopes:
            defs = [
                s for s in scope.body if isinstance(s, cst.FunctionDef) and s.name.value == name
            ]
            if defs:
                return (scope, defs[0]) if len(defs) == 1 else None
        return None

    def _keep_name(self, policy: Policy, field: str, value: cst.BaseExpression) -> None:
        name = self.constant_name(value)
        if name is not None:
            policy.sources[field] = name

    def _jitter(self, value: cst.BaseExpression) -> str:
        """``none``, ``full`` (``backoff.full_jitter``) or ``random`` (``random_jitter``)."""
        if isinstance(value, cst.Name) and value.value == "None":
            return "none"
        name = self.call_name(value, LIB)
        if name in ("full_jitter", "random_jitter") and not isinstance(value, cst.Call):
            return "full" if name == "full_jitter" else "random"
        raise Kept(f"jitter={self.code(value)} has no equivalent")

    def _not(self, value: cst.BaseExpression) -> str:
        """``retry_if`` for a ``giveup`` predicate: retry when it says not to give up."""
        if isinstance(value, cst.Lambda) and len(value.params.params) == 1:
            param = value.params.params[0].name.value
            return f"lambda {param}: not ({self.code(value.body)})"
        return f"lambda exc: not {self.code(value)}(exc)"

    def _giveup(self, value: cst.BaseExpression) -> list[str]:
        """``lambda e: isinstance(e, X)`` gives up on ``X``; other predicates have no equivalent."""
        if (
            isinstance(value, cst.Lambda)
            and len(value.params.params) == 1
            and isinstance(value.body, cst.Call)
            and isinstance(value.body.func, cst.Name)
            and value.body.func.value == "isinstance"
            and len(value.body.args) == 2
            and isinstance(value.body.args[0].value, cst.Name)
            and value.body.args[0].value.value == value.params.params[0].name.value
        ):
            return self.exception_types(value.body.args[1].value)
        raise Kept(f"giveup={self.code(value)} has no equivalent")


__all__ = ["BackoffCodemod"]

"""Tenacity's hooks, adapted: ``before=``, ``before_sleep=`` and
``retry_error_callback=`` functions that read tenacity's ``RetryCallState`` become
``before_retry`` / ``on_give_up`` reading a ``toolkit.RetryState`` (and
``current_step()`` for the call's arguments), when every read has an equivalent.

:class:`TenacityHooks` is the part of :class:`codemods.tenacity_retry.TenacityCodemod`
that reads and adapts them; a hook is adapted only once its site is rewritten.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import libcst as cst

from ._base import is_docstring
from ._decorators import DecoratorCodemod, Kept, name_uses
from ._policy import Policy


@dataclass
class HookRewrite:
    """A ``before=`` hook whose whole body runs only from the second attempt on
    (``if state.attempt_number > 1:``): it becomes ``before_retry``, its guard (always
    true there) dropped and ``state.attempt_number`` read as ``state.attempt + 1``."""

    #: the function whose body defines the hook (None: the module)
    scope: cst.FunctionDef | None
    name: str
    param: str
    #: ``before`` (its guard dropped) or ``adapted`` (its reads of the state adapted)
    kind: str = "before"
    #: the name ``toolkit.current_step`` is called by (a ``before_sleep`` hook's args)
    current_step: str = "current_step"


#: what a hook may read of tenacity's RetryCallState (``{p}``: its parameter);
#: :class:`_ToRetryState` reads each of a toolkit.RetryState instead
_READ_NAMES = {
    r"{p}\.attempt_number\b": ".attempt_number",
    r"{p}\.outcome\.exception\(\s*\)": ".outcome.exception()",
    r"{p}\.next_action\.sleep\b": ".next_action.sleep",
    r"{p}\.upcoming_sleep\b": ".upcoming_sleep",
    r"{p}\.seconds_since_start\b": ".seconds_since_start",
    r"{p}\.args\b": ".args",
    r"{p}\.kwargs\b": ".kwargs",
    r"{p}\.outcome\.result\(\s*\)": ".outcome.result()",
}
_SLEEP_HOOK_READS = tuple(list(_READ_NAMES)[:7])
#: at give-up there is no next sleep; the last outcome is a value only when results
#: alone are retried
_GIVE_UP_READS = tuple(r for r in _SLEEP_HOOK_READS if "sleep" not in r)
_RESULT_READ = r"{p}\.outcome\.result\(\s*\)"


#: an adapted hook's ``args``/``kwargs`` in a ``Retrying`` block: ``()`` and ``{}``
_NO_CALL = "<no call>"


def _reads_call(code: str, param: str) -> bool:
    """Whether a hook reads the call's arguments (``param.args``, ``param.kwargs``)."""
    return re.search(rf"\b{re.escape(param)}\.(args|kwargs)\b", code) is not None


_FIRST_ATTEMPT_GUARDS = (
    r"{p}\.attempt_number\s*>\s*1",
    r"{p}\.attempt_number\s*>=\s*2",
    r"{p}\.attempt_number\s*!=\s*1",
    r"1\s*<\s*{p}\.attempt_number",
    r"2\s*<=\s*{p}\.attempt_number",
)


class _DropGuard(cst.CSTTransformer):
    """``P.attempt_number`` -> ``(P.attempt + 1)`` (RetryState counts the failed attempt)."""

    def __init__(self, param: str) -> None:
        super().__init__()
        self.param = param

    def leave_Attribute(
        self, original_node: cst.Attribute, updated_node: cst.Attribute
    ) -> cst.BaseExpression:
        if (
            isinstance(updated_node.value, cst.Name)
            and updated_node.value.value == self.param
            and updated_node.attr.value == "attempt_number"
        ):
            return cst.parse_expression(f"({self.param}.attempt + 1)")
        return updated_node


#: a RetryCallState attribute path, and the RetryState field it reads instead
_STATE_FIELDS = {
    ("attempt_number",): "attempt",
    ("next_action", "sleep"): "delay",
    ("upcoming_sleep",): "delay",
    ("seconds_since_start",): "elapsed",
}


class _ToRetryState(cst.CSTTransformer):
    """A ``before_sleep`` hook's reads of tenacity's RetryCallState, as reads of the
    toolkit.RetryState ``before_retry`` is given (and of the step's context)."""

    def __init__(self, param: str, current_step: str) -> None:
        super().__init__()
        self.param, self.current_step = param, current_step

    def _chain(self, node: cst.BaseExpression) -> list[str] | None:
        names: list[str] = []
        while isinstance(node, cst.Attribute):
            names.insert(0, node.attr.value)
            node = node.value
        if isinstance(node, cst.Name) and node.value == self.param:
            return names
        return None

    def leave_Call(self, original_node: cst.Call, updated_node: cst.Call) -> cst.BaseExpression:
        chain = self._chain(updated_node.func)
        if not updated_node.args and chain in (["outcome", "exception"], ["outcome", "result"]):
            return cst.parse_expression(f"{self.param}.{chain[1]}")
        return updated_node

    def leave_Attribute(
        self, original_node: cst.Attribute, updated_node: cst.Attribute
    ) -> cst.BaseExpression:
        chain = self._chain(updated_node)
        if chain is not None and tuple(chain) in _STATE_FIELDS:
            return cst.parse_expression(f"{self.param}.{_STATE_FIELDS[tuple(chain)]}")
        if chain in (["args"], ["kwargs"]):
            if self.current_step == _NO_CALL:  # a Retrying block: tenacity had none
                return cst.parse_expression("()" if chain == ["args"] else "{}")
            return cst.parse_expression(f"{self.current_step}().{chain[0]}")
        return updated_node


def _rewrite_sleep_hook(function: cst.FunctionDef, param: str, current: str) -> cst.FunctionDef:
    """A ``before_sleep`` hook reading a toolkit.RetryState (``before_retry``)."""
    return cast(cst.FunctionDef, function.visit(_ToRetryState(param, current)))


def _rewrite_hook(function: cst.FunctionDef, param: str) -> cst.FunctionDef:
    """The hook without its first-attempt guard (``before_retry`` never runs before the
    first attempt), reading ``P.attempt + 1`` for tenacity's ``P.attempt_number``."""
    body: list[Any] = list(function.body.body)
    guard = body[-1]
    assert isinstance(guard, cst.If) and isinstance(guard.body, cst.IndentedBlock)
    inner: list[Any] = list(guard.body.body)
    inner[0] = inner[0].with_changes(leading_lines=[*guard.leading_lines, *inner[0].leading_lines])
    body[-1:] = [stmt.visit(_DropGuard(param)) for stmt in inner]
    return function.with_changes(body=function.body.with_changes(body=body))


class TenacityHooks(DecoratorCodemod):
    """Reads the hooks of a tenacity policy; rewrites the adapted ones at the end."""

    def __init__(self, context: Any, annotate: bool = False) -> None:
        super().__init__(context, annotate)
        #: how many functions the traversal is in (``functions`` holds them)
        self.depth = 0
        #: hooks the policy being read adapts (``before=``, ``before_sleep=``,
        #: ``retry_error_callback=``); committed to ``hook_rewrites`` when the site is
        #: recorded as rewritten
        self.hook_candidates: list[HookRewrite] = []
        self.hook_rewrites: list[HookRewrite] = []
        #: the policy being read is a ``for attempt in Retrying(...)`` block: its
        #: RetryCallState carried no call (``args`` is ``()``, ``kwargs`` is ``{}``)
        self.block_form = False

    def call_reader(self, code: str, param: str) -> str:
        """How an adapted hook reads the call's arguments: ``current_step`` (the name
        it is imported as), :data:`_NO_CALL` in a ``Retrying`` block, ``""`` if it
        does not read them."""
        if not _reads_call(code, param):
            return ""
        return _NO_CALL if self.block_form else self.need_current_step()

    def hook_beside(
        self, expr: cst.BaseExpression, kept: str
    ) -> tuple[cst.FunctionDef | None, cst.FunctionDef, str]:
        """The one-parameter function ``expr`` names, defined beside the decorator and
        used only there: ``(the function holding it or None for the module, the hook,
        its parameter)``, else :class:`Kept`."""
        if not isinstance(expr, cst.Name):
            raise Kept(f"{kept}: adapt it by hand")
        name = expr.value
        scope = self.functions[-2] if self.depth >= 2 else None
        body = list(scope.body.body) if scope is not None else list(self.source_module.body)
        defs = [s for s in body if isinstance(s, cst.FunctionDef) and s.name.value == name]
        if len(defs) != 1:
            raise Kept(f"{kept}: `{name}` is not a function defined beside it")
        hook = defs[0]
        if name_uses(scope if scope is not None else self.source_module, name) != 1:
            raise Kept(f"{kept}: `{name}` is used elsewhere too, so it cannot be adapted")
        params = hook.params
        if (
            len(params.params) != 1
            or params.posonly_params
            or params.kwonly_params
            or isinstance(params.star_arg, cst.Param)
            or params.star_kwarg is not None
            or hook.decorators
            or hook.asynchronous is not None
        ):
            raise Kept(f"{kept}: `{name}` does not take the state as its one parameter")
        return scope, hook, params.params[0].name.value

    def before_sleep_hook(self, expr: cst.BaseExpression) -> tuple[str, str]:
        """``before_sleep=hook``: tenacity calls it after a failed attempt it retries,
        before the wait, as ``before_retry`` is called. A hook defined here and used
        only there, reading of its state only ``attempt_number``,
        ``outcome.exception()``, ``next_action.sleep`` (``upcoming_sleep``),
        ``seconds_since_start``, ``args`` and ``kwargs``, is adapted to read them from
        the toolkit.RetryState (and ``current_step()``) and becomes ``before_retry``."""
        shown = self.code(expr)
        kept = (
            f"option `before_sleep={shown}` runs {shown} with tenacity's RetryCallState"
            " (before_retry gets a toolkit.RetryState"
        )
        scope, function, param = self.hook_beside(expr, kept + ")")
        name = function.name.value
        self.check_reads(function.body, param, _SLEEP_HOOK_READS, f"{kept}; `{name}`")
        code = self.code(function.body)
        current = self.call_reader(code, param)
        self.hook_candidates.append(HookRewrite(scope, name, param, "adapted", current))
        note = (
            f"before_sleep={name} is before_retry now, called at the same moment with a"
            f" toolkit.RetryState: it reads {param}.attempt, .exception, .delay, .elapsed"
            " where it read tenacity's attempt_number, outcome.exception(),"
            " next_action.sleep, seconds_since_start"
        )
        if current == _NO_CALL:
            note += ", and () / {} for the args/kwargs a Retrying block's state had"
        elif current:
            note += f", and {current}().args/.kwargs for the call's arguments"
        return name, note

    def before_hook(self, expr: cst.BaseExpression) -> tuple[str, str]:
        """``before=hook``: tenacity calls it before every attempt, the first included, and
        an exception it raises ends the retries at once. A hook defined here whose whole
        body is under ``if state.attempt_number > 1:`` does nothing before the first
        attempt: it is ``before_retry`` (also not retried when it raises), run before the
        wait instead of after it (noted)."""
        shown = self.code(expr)
        kept = (
            f"option `before={shown}` runs before every attempt, the first included, with"
            " tenacity's RetryCallState (RetryPolicy.before_retry runs only between attempts,"
            " given a toolkit.RetryState)"
        )
        scope, hook, param = self.hook_beside(expr, kept)
        name = hook.name.value
        stmts = list(hook.body.body)
        if stmts and is_docstring(stmts[0]):
            stmts = stmts[1:]
        guard = stmts[0] if len(stmts) == 1 else None
        guarded = (
            isinstance(guard, cst.If)
            and guard.orelse is None
            and isinstance(guard.body, cst.IndentedBlock)
            and any(
                re.fullmatch(pattern.format(p=re.escape(param)), self.code(guard.test).strip())
                for pattern in _FIRST_ATTEMPT_GUARDS
            )
        )
        if not guarded:
            raise Kept(
                f"{kept}; `{name}` also runs before the first attempt (only a hook whose whole"
                f" body is under `if {param}.attempt_number > 1:` is rewritten): adapt it by hand"
            )
        assert isinstance(guard, cst.If)
        uses = re.findall(rf"\b{re.escape(param)}\b(\.\w+)?", self.code(guard.body))
        other = sorted({use or param for use in uses if use != ".attempt_number"})
        if other:
            raise Kept(
                f"{kept}: `{name}` reads `{param}{other[0] if other[0] != param else ''}`,"
                " which a toolkit.RetryState does not carry"
            )
        self.hook_candidates.append(HookRewrite(scope, name, param))
        note = (
            f"before={name} ran before every attempt and did nothing before the first: it is"
            " before_retry now, run after a failed attempt and before the wait instead of"
            " after it (an exception it raises still ends the retries at once, now without"
            " that wait); its first-attempt guard is dropped"
        )
        if ".attempt_number" in self.code(guard.body):
            note += f", and it reads `{param}.attempt + 1` for tenacity's `{param}.attempt_number`"
        return name, note

    def fallback(self, expr: cst.BaseExpression, policy: Policy, notes: list[str]) -> str:
        """``retry_error_callback=callback``: tenacity calls it when attempts run out and
        returns its value, as ``on_give_up`` does. A lambda, or a function defined beside
        the decorator and used only there, reading of its state only
        ``attempt_number``, ``outcome.exception()``, ``seconds_since_start``, ``args``,
        ``kwargs`` (and ``outcome.result()`` when only results are retried: the last
        outcome is then a value) is adapted to read them from the toolkit.RetryState."""
        shown = self.code(expr)
        kept = (
            f"retry_error_callback={shown} reads tenacity's RetryCallState"
            " (on_give_up gets a toolkit.RetryState"
        )
        results_only = policy.retry_on_result is not None and not policy.retry_on
        reads = [*_GIVE_UP_READS, *([_RESULT_READ] if results_only else [])]
        if isinstance(expr, cst.Lambda):
            params = expr.params
            if len(params.params) != 1 or isinstance(params.star_arg, cst.Param):
                raise Kept(f"{kept}: adapt it by hand)")
            param = params.params[0].name.value
            if param not in self.code(expr.body):
                return f"lambda _state: {self.code(expr.body)}"
            self.check_reads(expr.body, param, reads, f"{kept}; it")
            current = self.call_reader(self.code(expr.body), param)
            body = expr.body.visit(_ToRetryState(param, current))
            notes.append(f"retry_error_callback reads the toolkit.RetryState `{param}` now")
            return f"lambda {param}: {self.code(cast(cst.BaseExpression, body))}"
        scope, function, param = self.hook_beside(expr, kept + ")")
        name = function.name.value
        self.check_reads(function.body, param, reads, f"{kept}; `{name}`")
        code = self.code(function.body)
        current = self.call_reader(code, param)
        self.hook_candidates.append(HookRewrite(scope, name, param, "adapted", current))
        notes.append(
            f"retry_error_callback={name} is on_give_up now: it reads the toolkit.RetryState"
            f" `{param}` where it read tenacity's RetryCallState"
        )
        return name

    def check_reads(self, node: cst.CSTNode, param: str, reads: Sequence[str], kept: str) -> None:
        """Raise :class:`Kept` unless ``param`` is read in ``node`` only as ``reads``."""
        code, p = self.code(node), re.escape(param)
        known = sum(len(re.findall(pattern.format(p=p), code)) for pattern in reads)
        if len(re.findall(rf"\b{p}\b", code)) != known:
            names = [f"{param}{_READ_NAMES[r]}" for r in reads]
            shown = ", ".join(names[:-1]) + f" or {names[-1]}"
            raise Kept(f"{kept} reads `{param}` other than as {shown}): adapt it by hand")

    def adapt_hooks(self, scope: cst.FunctionDef | None, body: Sequence[Any]) -> list[Any]:
        """``body`` with the hooks of ``hook_rewrites`` defined in ``scope`` adapted: a
        ``before=`` hook loses its first-attempt guard, the others read a RetryState."""
        hooks = {h.name: h for h in self.hook_rewrites if h.scope is scope}
        out = []
        for stmt in body:
            hook = hooks.get(stmt.name.value) if isinstance(stmt, cst.FunctionDef) else None
            if hook is None:
                out.append(stmt)
            elif hook.kind == "adapted":
                out.append(_rewrite_sleep_hook(stmt, hook.param, hook.current_step))
            else:
                out.append(_rewrite_hook(stmt, hook.param))
        return out

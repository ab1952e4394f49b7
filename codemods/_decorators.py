"""Shared machinery of the decorator codemods (``tenacity``, ``backoff``).

A retry decorator is replaced *in place* (same position among the other
decorators, so stacking keeps its meaning) by ``@step(retry=RetryPolicy(...))``.
A decorator with an option that has no equivalent in ``RetryPolicy`` is kept
as it is and reported as ``kept`` with the option named: a half-translated
decorator stacked on a step would multiply the attempts.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import libcst as cst
from libcst.metadata import GlobalScope, PositionProvider, QualifiedNameProvider, ScopeProvider

from . import _evaluate as ev
from ._base import DurableCodemod, module_constants
from ._effects import unserializable_return
from ._policy import AmbiguousTypes, Policy, check_types


class Kept(Exception):
    """The decorator stays; the message names the option without an equivalent."""


class NotRewritten(Exception):
    """The decorator is not a retry this codemod rewrites (reported as skipped)."""


Rewrite = tuple[Policy, list[str]]


class DecoratorCodemod(DurableCodemod):
    """Base class: subclasses map one decorator call to a :class:`Policy`."""

    METADATA_DEPENDENCIES: ClassVar[tuple[Any, ...]] = (
        PositionProvider,
        ScopeProvider,
        QualifiedNameProvider,
    )
    #: the top-level module whose imports are dropped once unused
    LIBRARY = ""

    def __init__(self, context: Any, annotate: bool = False) -> None:
        super().__init__(context, annotate)
        self.source_module = cst.Module(body=[])
        self.constants: dict[str, ev.Number] = {}
        self.changed = False
        #: functions entered and not yet left, for the subclasses that keep the stack
        #: (a decorator or a call inside one may read run-time values)
        self.functions: list[cst.FunctionDef] = []

    def visit_Module(self, node: cst.Module) -> bool:
        super().visit_Module(node)
        self.source_module = node
        scope = self.get_metadata(ScopeProvider, node, None)
        if isinstance(scope, GlobalScope):
            self.constants = module_constants(node, scope)
        return True

    @classmethod
    def might_apply(cls, source: str) -> bool:
        """Only a file that imports the library can use it."""
        pattern = rf"^\s*(from|import)\s+{re.escape(cls.LIBRARY)}\b"
        return re.search(pattern, source, re.MULTILINE) is not None

    # -- to implement ----------------------------------------------------------
    def match(self, decorator: cst.Decorator) -> Callable[[], Rewrite] | None:
        """A function computing the rewrite if ``decorator`` is one of ours, else None."""
        raise NotImplementedError

    # -- the traversal -----------------------------------------------------------
    def leave_FunctionDef(
        self, original_node: cst.FunctionDef, updated_node: cst.FunctionDef
    ) -> cst.FunctionDef:
        decorators: list[cst.Decorator] = []
        changed = False
        reason: str | None = None
        for original, updated in zip(
            original_node.decorators, updated_node.decorators, strict=True
        ):
            rewrite = self.match(original)
            if rewrite is None:
                decorators.append(updated)
                continue
            try:
                policy, notes = rewrite()
                check_types(policy.retry_on)
                check_types(policy.give_up_on)
            except AmbiguousTypes as ambiguous:
                reason = str(ambiguous)
                self.record(original, "kept", reason, end=original_node)
                decorators.append(updated)
                continue
            except Kept as kept:
                reason = str(kept)
                self.record(original, "kept", reason, end=original_node)
                decorators.append(updated)
                continue
            except NotRewritten as skipped:
                reason = str(skipped)
                self.record(original, "skipped", reason, end=original_node)
                decorators.append(updated)
                continue
            returned = unserializable_return(original_node.body, self.code)
            if returned:
                notes = [*notes, returned]
            self.record(
                original,
                "rewritten",
                "decorator replaced by a step",
                notes,
                policy.summary(),
                original_node,
            )
            new = self.decorator_for(policy).with_changes(leading_lines=updated.leading_lines)
            decorators.append(new)
            changed = True
        if changed:
            self.changed = True
            updated_node = updated_node.with_changes(decorators=decorators)
        if reason is not None and not changed:
            updated_node = self.annotated(updated_node, reason)
        return updated_node

    def enclosing_parameters(self) -> set[str]:
        """The parameter names of the innermost function of :attr:`functions` (the
        subclass keeps that stack), empty at module level."""
        if not self.functions:
            return set()
        params = self.functions[-1].params
        every = [*params.posonly_params, *params.params, *params.kwonly_params]
        names = {p.name.value for p in every}
        for star in (params.star_arg, params.star_kwarg):
            if isinstance(star, cst.Param):
                names.add(star.name.value)
        return names

    def engine_reason(self, what: str, target: cst.BaseExpression | None) -> str | None:
        """Why a call form that retries ``target`` stays: ``target`` is a parameter of the
        enclosing function, a function its callers pass in (a retry engine); else None."""
        if not (isinstance(target, cst.Name) and target.value in self.enclosing_parameters()):
            return None
        return (
            f"a retry engine: {what} retries `{target.value}`, which its callers pass in (a"
            " parameter of the enclosing function): make the functions they pass steps instead"
        )

    def step_call(
        self, node: cst.CSTNode, rewrite: Callable[[], Rewrite], what: str
    ) -> cst.Call | None:
        """``step(retry=RetryPolicy(...))`` for a call form of the library's decorator
        (``return retry(...)``, ``retry(...)(fn)``, ``deco = retry(...)``), recorded on
        ``node``; ``None`` (recorded kept or skipped, with the reason) if it stays."""
        try:
            policy, notes = rewrite()
            check_types(policy.retry_on)
            check_types(policy.give_up_on)
        except (Kept, NotRewritten, AmbiguousTypes) as exc:
            self.record(node, "kept" if isinstance(exc, Kept) else "skipped", str(exc))
            return None
        self.need_imports()
        self.changed = True
        self.record(node, "rewritten", f"{what} became step(retry=...)", notes, policy.summary())
        policy_code = cst.Module(body=[]).code_for_node(policy.to_call(self.policy_name))
        made = cst.parse_expression(f"{self.step_name}(retry={policy_code})")
        assert isinstance(made, cst.Call)
        return made

    def leave_Module(self, original_node: cst.Module, updated_node: cst.Module) -> cst.Module:
        if self.changed:
            self.drop_library_imports(updated_node)
        return updated_node

    def drop_library_imports(self, module: cst.Module) -> None:
        """Schedule every import of :attr:`LIBRARY` for removal; each goes only if unused."""
        for stmt in module.body:
            if not isinstance(stmt, cst.SimpleStatementLine):
                continue
            for small in stmt.body:
                if isinstance(small, cst.Import):
                    for alias in small.names:
                        name = self.source_module.code_for_node(alias.name)
                        if name == self.LIBRARY or name.startswith(self.LIBRARY + "."):
                            self.drop_if_unused(name)
                elif isinstance(small, cst.ImportFrom) and small.module is not None:
                    name = self.source_module.code_for_node(small.module)
                    if small.relative or not (
                        name == self.LIBRARY or name.startswith(self.LIBRARY + ".")
                    ):
                        continue
                    if isinstance(small.names, cst.ImportStar):
                        continue
                    for alias in small.names:
                        self.drop_if_unused(name, self.source_module.code_for_node(alias.name))

    # -- helpers -----------------------------------------------------------------
    def qualified(self, node: cst.CSTNode) -> set[str]:
        """Qualified names of ``node`` (``tenacity.stop_after_attempt``, ...)."""
        return {q.name for q in self.get_metadata(QualifiedNameProvider, node, set())}

    def call_name(self, node: cst.BaseExpression, library: str) -> str | None:
        """``stop_after_attempt`` for a call or name resolving to ``library.stop_after_attempt``."""
        target = node.func if isinstance(node, cst.Call) else node
        for name in self.qualified(target):
            if name.startswith(library + "."):
                return name.rsplit(".", 1)[1]
        return None

    def code(self, node: cst.CSTNode) -> str:
        return self.source_module.code_for_node(node)

    def constant_name(self, expr: cst.BaseExpression) -> str | None:
        """The name of the module constant ``expr`` is, if it is one."""
        if isinstance(expr, cst.Name) and expr.value in self.constants:
            return expr.value
        return None

    def number(self, expr: cst.BaseExpression, option: str) -> float:
        """A constant number, or :class:`Kept` naming the option."""
        try:
            value = ev.evaluate(ev.parse(self.code(expr)), self.constants)
        except (ev.Unknown, SyntaxError):
            raise Kept(f"{option}={self.code(expr)} is known only at run time") from None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise Kept(f"{option}={self.code(expr)} is not a number")
        return float(value)

    def bound_args(
        self, call: cst.Call, names: Sequence[str], what: str
    ) -> dict[str, cst.BaseExpression]:
        """Map a call's arguments to parameter names (positional, then keywords)."""
        out: dict[str, cst.BaseExpression] = {}
        for index, arg in enumerate(call.args):
            if arg.star:
                raise Kept(f"{what} gets *args or **kwargs")
            if arg.keyword is None:
                if index >= len(names):
                    raise Kept(f"{what} has an unexpected argument")
                out[names[index]] = arg.value
            else:
                out[arg.keyword.value] = arg.value
        unknown = set(out) - set(names)
        if unknown:
            raise Kept(f"{what} has option `{sorted(unknown)[0]}=` with no equivalent")
        return out

    def exception_types(self, expr: cst.BaseExpression) -> list[str]:
        """``(A, B)`` or ``A`` as source strings."""
        if isinstance(expr, cst.Tuple | cst.List):
            return [self.code(e.value) for e in expr.elements]
        return [self.code(expr)]


def name_uses(node: cst.CSTNode, name: str) -> int:
    """How many times ``name`` is read as a name (not as an attribute) in ``node``."""
    count = 0

    class Counter(cst.CSTVisitor):
        def visit_Name(self, found: cst.Name) -> None:
            nonlocal count
            count += found.value == name

        def visit_Attribute(self, found: cst.Attribute) -> bool:
            found.value.visit(self)
            return False

        def visit_Arg(self, found: cst.Arg) -> bool:
            found.value.visit(self)  # a keyword is not a use
            return False

        def visit_FunctionDef(self, found: cst.FunctionDef) -> bool:
            for part in (*found.decorators, found.params, found.body):
                part.visit(self)
            return False  # its own name is a definition, not a use

    node.visit(Counter())
    return count


__all__ = ["DecoratorCodemod", "Kept", "NotRewritten", "name_uses"]

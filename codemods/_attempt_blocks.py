"""Attempt blocks: ``for attempt in Retrying(...): with attempt: ...`` (tenacity) and
``for attempt in stamina.retry_context(...): with attempt: ...`` (stamina).

A block that is the whole body of its function (a docstring may come first) and holds
one ``with attempt:`` whose body does not read ``attempt`` makes the function a step:
the block's body becomes the function's body. Anything else is refused with the reason.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import libcst as cst

from ._base import is_docstring
from ._decorators import Kept, NotRewritten
from ._policy import AmbiguousTypes, Policy, check_types

if TYPE_CHECKING:
    from ._decorators import DecoratorCodemod

#: what reading a block gives: the new body's maker, the policy, its notes
BlockRead = tuple[Callable[[cst.FunctionDef], list[Any]], Policy, list[str]]


def attempt_block(
    func: cst.FunctionDef,
    loop: cst.For,
    index: int,
    code: Callable[[cst.CSTNode], str],
    label: str,
    async_mismatch: str,
) -> Callable[[cst.FunctionDef], list[Any]]:
    """Check that ``loop`` (statement ``index`` of ``func``) is a whole-body attempt block;
    return the function giving the new body from the updated function. ``label`` names
    the construct in reasons (``Retrying``); ``async_mismatch`` is the reason for a
    sync block in an async function or the other way round."""
    body = list(func.body.body)
    before = body[:index]
    if before and not (index == 1 and is_docstring(before[0])):
        raise NotRewritten(f"the {label} block is not the whole body of the function")
    if index != len(body) - 1:
        raise NotRewritten(f"code follows the {label} block")
    inner = loop.body.body if isinstance(loop.body, cst.IndentedBlock) else []
    target = loop.target
    if (
        len(inner) != 1
        or not isinstance(inner[0], cst.With)
        or len(inner[0].items) != 1
        or not isinstance(target, cst.Name)
        or code(inner[0].items[0].item) != target.value
        or inner[0].items[0].asname is not None
    ):
        raise NotRewritten(f"the {label} loop body is not one `with attempt:` block")
    if (loop.asynchronous is None) != (func.asynchronous is None):
        raise NotRewritten(async_mismatch)
    if loop.orelse is not None:
        raise NotRewritten(f"the {label} loop has an else block")
    if target.value in code(inner[0].body):
        raise NotRewritten(f"the attempt body uses `{target.value}`")

    def rewrite(updated: cst.FunctionDef) -> list[Any]:
        updated_loop = updated.body.body[index]
        assert isinstance(updated_loop, cst.For)
        assert isinstance(updated_loop.body, cst.IndentedBlock)
        with_ = updated_loop.body.body[0]
        assert isinstance(with_, cst.With)
        stmts: list[Any] = list(with_.body.body)
        first = stmts[0].with_changes(
            leading_lines=[*updated_loop.leading_lines, *stmts[0].leading_lines]
        )
        return [first, *stmts[1:]]

    return rewrite


def block_to_step(
    codemod: DecoratorCodemod,
    block: cst.For,
    updated: cst.FunctionDef,
    index: int,
    read: Callable[[], BlockRead],
    label: str,
) -> cst.FunctionDef | None:
    """The function made a step from its attempt block ``block`` (statement ``index``),
    recorded as rewritten; ``None`` when ``read`` refuses it (recorded with the reason)."""
    try:
        rewrite, policy, notes = read()
        check_types(policy.retry_on)
        check_types(policy.give_up_on)
    except (Kept, NotRewritten, AmbiguousTypes) as exc:
        codemod.record(block, "kept" if isinstance(exc, Kept) else "skipped", str(exc))
        return None
    codemod.record(
        block, "rewritten", f"{label} block: the function became a step", notes, policy.summary()
    )
    codemod.changed = True
    new_body = [*list(updated.body.body)[:index], *rewrite(updated)]
    return updated.with_changes(
        body=updated.body.with_changes(body=new_body),
        decorators=[*updated.decorators, codemod.decorator_for(policy)],
    )


__all__ = ["attempt_block", "block_to_step"]

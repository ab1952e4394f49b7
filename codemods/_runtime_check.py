"""A policy read from run-time values, checked where it was not fitted.

The retry-loop codemod fits a policy to a loop whose count or delays follow run-time
values (``range(retries)``, ``min(max_backoff, backoff * 2 ** n)``) by simulating it
with each value at a base and two probes. Values that coincide at the base hide laws:
with ``backoff == max_backoff`` every delay is the cap, with a cap no delay reaches
the cap is not seen. :func:`distinct_bases` gives other bases to fit at, and
:func:`check_other_values` runs the loop with every value changed at once and compares
what it does with the ``RetryPolicy(...)`` the codemod writes, evaluated there: the
attempts, each delay, and whether ``RetryPolicy`` accepts the values at all.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from itertools import permutations
from typing import Any

import libcst as cst

from . import _evaluate as ev
from ._loop_simulation import Skip
from ._policy import Policy

#: bases far enough apart that a cap, a first delay and a count never coincide
_BASES = (6, 24, 96, 384)
#: the values every run-time value takes, all at once, in every order
_CHECKED = (2, 5, 9, 13)
_NUMERIC = ("max_attempts", "initial_delay", "backoff", "max_delay", "increment", "min_delay")
_COMPARED_RETRIES = 8


def probes_of(base: int) -> tuple[int, int]:
    """The two variations of a value whose base is ``base`` (6 -> 7, 12)."""
    return base + 1, 2 * base


def distinct_bases(names: Sequence[str]) -> Iterator[dict[str, int]]:
    """Every assignment of distinct bases to ``names``."""
    for chosen in permutations(_BASES[: len(names)]):
        yield dict(zip(names, chosen, strict=True))


def check_other_values(
    policy: Policy,
    simulate: Callable[[dict[str, Any]], Any],
    flags: Mapping[str, Any],
    numeric: Sequence[str],
    constants: Mapping[str, Any],
) -> None:
    """Raise :class:`Skip` when the loop, run with its run-time values at other points,
    does not do what the written ``RetryPolicy(...)`` does there."""
    if not numeric:
        return
    from toolkit.retry import RetryPolicy  # the real one, imported only when needed

    call = policy.to_call()
    written = {
        arg.keyword.value: cst.Module(body=[]).code_for_node(arg.value)
        for arg in call.args
        if arg.keyword is not None and arg.keyword.value in _NUMERIC
    }
    points = [dict.fromkeys(numeric, 5)]
    points += [dict(zip(numeric, p, strict=True)) for p in permutations(_CHECKED[: len(numeric)])]
    for point in points:
        try:
            outcome = simulate({**flags, **point})
        except Skip:
            continue  # the loop never runs there: the count-below-1 note says it
        env = {**constants, **flags, **point}
        try:
            values = {
                key: ev.evaluate(ev.flatten_attributes(ev.parse(src)), env)
                for key, src in written.items()
            }
        except (ev.Unknown, ArithmeticError, TypeError, ValueError):
            continue
        shown = " and ".join(f"`{k}` is {v}" for k, v in point.items())
        try:
            real = RetryPolicy(**values)
        except (ValueError, TypeError) as exc:
            attempts = values.get("max_attempts")
            if isinstance(attempts, int | float) and attempts < 1:
                continue  # a count below 1: noted on the site
            raise Skip(
                f"the policy read does not hold when {shown}: RetryPolicy refuses it ({exc}),"
                f" the loop makes {_attempts(outcome.attempts)}"
            ) from None
        if real.max_attempts != outcome.attempts:
            raise Skip(
                f"the policy read does not hold when {shown}: the policy gives"
                f" {_attempts(real.max_attempts)}, the loop {_attempts(outcome.attempts)}"
            )
        if outcome.jitter or outcome.random_delay or outcome.full_jitter:
            continue
        if getattr(outcome, "supplied", None) is not None:
            continue
        retries = _COMPARED_RETRIES if outcome.attempts is None else max(outcome.attempts - 1, 0)
        actual = list(outcome.delays[:retries])
        expected = [real.delay(k) for k in range(1, len(actual) + 1)]
        if any(
            not math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)
            for a, b in zip(actual, expected, strict=True)
        ):
            raise Skip(
                f"the policy read does not hold when {shown}: the policy gives"
                f" {_show(expected)}, the loop {_show(actual)}"
            )


def _attempts(value: int | None) -> str:
    return "unlimited attempts" if value is None else f"{value} attempt(s)"


def _show(delays: list[float]) -> str:
    return "delays " + ", ".join(f"{d:g}" for d in delays[:4]) if delays else "no delay"


__all__ = ["check_other_values", "distinct_bases", "probes_of"]

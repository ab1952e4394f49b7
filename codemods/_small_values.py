"""The policy read from a loop whose count or delays come from run-time values must hold
for small and empty values too.

The retry-loop codemod learns such a policy by simulating the loop with each
run-time value at a few probes (6, 7, 12) and fitting each field as ``value + c``
(attempts) or ``k * value`` (delays). Code that treats small or empty values
its own way (``range(tries or 5)``,
``min(limit, 4)``, ``range(max(1, n))``, ``sleep(wait or 2)``, ``if x > 2:
sleep(1) else: sleep(10)``) fits those probes with a law it does not follow.
:func:`check_small_values` simulates again at -1, 0, 1, 2 and 3 and refuses the
loop when what it does there is not what the policy predicts.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from ._loop_simulation import Skip

SMALL_VALUES = (-1, 0, 1, 2, 3)
_FIELDS = ("max_attempts", "initial_delay", "backoff", "max_delay", "increment")
_COMPARED_RETRIES = 8


def check_small_values(
    simulate: Callable[[dict[str, Any]], Any],
    flags: Mapping[str, Any],
    symbols: Mapping[str, Any],
    base_fields: tuple[Any, ...],
    followers: Mapping[str, str],
    base: Any,
    probe: float | Mapping[str, float],
    notes: list[str] | None = None,
) -> tuple[bool, bool]:
    """Raise :class:`Skip` when the loop, run with a run-time value at 0..3, does not do
    what the policy fitted at ``probe`` predicts (attempts, then delays).

    Return two answers. First, whether the loop runs once where the policy's count falls
    below 1 (``while True`` with ``if tries >= limit: raise`` after the attempt): the
    count is then written ``max(1, ...)``, which is exact. Second, whether a count of
    exactly 0 means "no limit" to the loop (``retry = tries < limit if limit else
    True``): the count is then written ``... or None``, which is exact.

    A negative value that made the loop retry without end (``if not retries: raise``
    never true) is not a refusal: it is added to ``notes``, the policy refusing the
    count with ``ValueError`` instead."""
    once_below_one: list[bool] = []
    zero_unlimited = False
    for name in symbols:
        for small in SMALL_VALUES:
            at = probe[name] if isinstance(probe, Mapping) else probe
            fields = _predicted(base_fields, followers, name, small, at)
            attempts = fields["max_attempts"]
            try:
                outcome = simulate({**flags, **symbols, name: small})
            except Skip as skip:
                if attempts is not None and attempts >= 1:
                    if str(skip) != "the loop never runs":
                        raise Skip(
                            f"the policy read for `{name}` cannot be checked when it is {small}:"
                            f" {skip}"
                        ) from None
                    raise _differs(name, small, f"{attempts} attempt(s)", "no attempt") from None
                once_below_one.append(False)
                continue  # the loop never runs: the count-below-1 note says what changes
            if attempts is not None and attempts < 1:
                if outcome.attempts == 1 and followers.get("max_attempts") == name:
                    once_below_one.append(True)  # max(1, count): exact
                    continue
                if (
                    outcome.attempts is None
                    and small == 0
                    and attempts == 0
                    and followers.get("max_attempts") == name
                ):
                    zero_unlimited = True  # `limit or None`: exact
                    continue
                if outcome.attempts is None and small < 0 and notes is not None:
                    note = (
                        f"a negative `{name}` at run time retried without end in the legacy"
                        " code; RetryPolicy raises ValueError for it"
                    )
                    if note not in notes:
                        notes.append(note)
                    continue
                if outcome.attempts is None or outcome.attempts >= 1:
                    raise _differs(name, small, "no attempt", _attempts(outcome.attempts))
                once_below_one.append(False)
                continue
            if outcome.attempts != attempts:
                raise _differs(name, small, _attempts(attempts), _attempts(outcome.attempts))
            if base.jitter or base.random_delay or outcome.jitter or outcome.random_delay:
                continue  # random delays: the attempts were compared
            if getattr(outcome, "supplied", None) is not None:
                continue  # a delay the failure supplies: not a law to compare
            retries = _COMPARED_RETRIES if attempts is None else max(attempts - 1, 0)
            expected = _delays(fields, min(retries, len(outcome.delays)))
            actual = outcome.delays[: len(expected)]
            if any(
                not math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)
                for a, b in zip(actual, expected, strict=True)
            ):
                raise _differs(name, small, _show(expected), _show(actual))
    if any(once_below_one) and not all(once_below_one):
        raise Skip("the loop runs once for some counts below 1 and not at all for others")
    return any(once_below_one), zero_unlimited


def _predicted(
    base_fields: tuple[Any, ...],
    followers: Mapping[str, str],
    name: str,
    small: float,
    probe: float,
) -> dict[str, Any]:
    fields = dict(zip(_FIELDS, base_fields, strict=True))
    for field_name, follows in followers.items():
        if follows != name or fields[field_name] is None:
            continue
        if field_name == "max_attempts":
            fields[field_name] = int(fields[field_name] - probe + small)
        else:
            fields[field_name] = fields[field_name] * small / probe
    return fields


def _delays(fields: Mapping[str, Any], retries: int) -> list[float]:
    initial = fields["initial_delay"] or 0.0
    factor = fields["backoff"] or 1.0
    increment = fields["increment"] or 0.0
    cap = fields["max_delay"]
    out = []
    for k in range(retries):
        delay = initial * factor**k + increment * k
        out.append(min(delay, cap) if cap is not None else delay)
    return out


def _attempts(value: int | None) -> str:
    return "unlimited attempts" if value is None else f"{value} attempt(s)"


def _show(delays: list[float]) -> str:
    return "delays " + ", ".join(f"{d:g}" for d in delays[:4]) if delays else "no delay"


def _differs(name: str, small: int, predicted: str, actual: str) -> Skip:
    return Skip(
        f"the policy read for `{name}` does not hold when it is {small}: the policy gives"
        f" {predicted}, the loop {actual} (it treats small or empty values its own way)"
    )

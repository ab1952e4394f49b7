"""Retry policies: how often and how patiently a step is tried again."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


def _as_tuple(value: object) -> tuple[type[BaseException], ...]:
    if isinstance(value, type):
        value = (value,)
    result: tuple[type[BaseException], ...] = tuple(value)  # type: ignore[arg-type]
    for item in result:
        if not (isinstance(item, type) and issubclass(item, BaseException)):
            raise TypeError(f"expected exception classes, got {item!r}")
    return result


@dataclass(frozen=True)
class RetryPolicy:
    """How a failed step is tried again.

    Attempt ``n`` (1-based) raised ``exc``:

    * ``exc`` is an instance of ``give_up_on``, or not of ``retry_on``: it is raised at once;
    * ``n == max_attempts``, or waiting would pass ``max_elapsed`` seconds since the
      first attempt: ``exc`` is raised;
    * otherwise the step sleeps ``min(max_delay, initial_delay * backoff ** (n - 1))``
      seconds (with ``jitter``, a uniform draw from half that delay up to it) and tries again.

    ``max_attempts=None`` retries until ``max_elapsed`` runs out, or forever.
    Inside a workflow the attempt count and the next attempt's time are durable.
    """

    max_attempts: int | None = 3
    initial_delay: float = 1.0
    backoff: float = 2.0
    max_delay: float = 60.0
    jitter: bool = False
    retry_on: tuple[type[BaseException], ...] = field(default=(Exception,))
    give_up_on: tuple[type[BaseException], ...] = field(default=())
    max_elapsed: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "retry_on", _as_tuple(self.retry_on))
        object.__setattr__(self, "give_up_on", _as_tuple(self.give_up_on))
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1 (or None for no limit)")
        if self.initial_delay < 0 or self.max_delay < 0:
            raise ValueError("delays must not be negative")
        if self.backoff <= 0:
            raise ValueError("backoff must be positive (1.0 keeps the delay constant)")
        if self.max_elapsed is not None and self.max_elapsed < 0:
            raise ValueError("max_elapsed must not be negative")

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt ``attempt`` (1-based), jitter applied."""
        exponent = max(attempt - 1, 0)
        try:
            base = self.initial_delay * self.backoff**exponent
        except OverflowError:
            base = self.max_delay
        base = min(self.max_delay, base)
        if self.jitter and base > 0:
            return random.uniform(base / 2, base)
        return base

    def retryable(self, exc: BaseException) -> bool:
        """Whether ``exc`` may be retried at all (ignoring the attempt budget)."""
        if isinstance(exc, self.give_up_on):
            return False
        return isinstance(exc, self.retry_on)

    def next_delay(self, exc: BaseException, attempt: int, elapsed: float) -> float | None:
        """The delay before the next attempt, or ``None`` when ``exc`` must be raised."""
        if not self.retryable(exc):
            return None
        return self.budget_delay(attempt, elapsed)

    def budget_delay(self, attempt: int, elapsed: float) -> float | None:
        """The delay after failed attempt ``attempt`` if the budget (attempts, elapsed) allows."""
        if self.max_attempts is not None and attempt >= self.max_attempts:
            return None
        delay = self.delay(attempt)
        if self.max_elapsed is not None and elapsed + delay > self.max_elapsed:
            return None
        return delay


NO_RETRY = RetryPolicy(max_attempts=1)
"""The policy of a step declared without ``retry=``: one attempt."""

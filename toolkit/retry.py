"""Retry policies: how often and how patiently a step is tried again.

:class:`RetryPolicy` is the one place that decides what follows a failed attempt
(an exception, or a returned value ``retry_on_result`` rejects): another attempt
after some delay, or the end of the step (raise, or ``on_give_up``'s fallback
value). The engine runs the attempts, records them and waits; it asks the policy.
"""

from __future__ import annotations

import datetime
import inspect
import math
import random
import reprlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import RetriesExhausted


def _as_tuple(value: object) -> tuple[type[BaseException], ...]:
    if isinstance(value, type):
        value = (value,)
    result: tuple[type[BaseException], ...] = tuple(value)  # type: ignore[arg-type]
    for item in result:
        if not (isinstance(item, type) and issubclass(item, BaseException)):
            raise TypeError(f"expected exception classes, got {item!r}")
    return result


def _as_schedule(value: object) -> tuple[float, ...]:
    """``delays`` as a tuple of seconds; a clear error for anything else."""
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise ValueError(f"delays must be a sequence of seconds, got {short_repr(value)}")
    out: list[float] = []
    for item in value:
        if isinstance(item, bool) or not isinstance(item, int | float):
            raise ValueError(f"delays must hold seconds (numbers), got {short_repr(item)}")
        if not math.isfinite(item) or item < 0:
            raise ValueError(f"delays must be finite and not negative, got {item!r}")
        out.append(float(item))
    return tuple(out)


def short_repr(value: Any, limit: int = 80) -> str:
    """A one-line, bounded ``repr`` for messages and logs."""
    shortener = reprlib.Repr()
    shortener.maxstring = shortener.maxother = limit
    text = shortener.repr(value)
    return " ".join(text.split())


def _plain(name: str, value: Any) -> Any:
    """``value`` returned by hook ``name``; an awaitable is refused (hooks are plain
    functions: an ``async def`` hook would never run, and its coroutine is truthy)."""
    if inspect.isawaitable(value):
        close = getattr(value, "close", None)
        if close is not None:
            close()  # no "never awaited" warning
        raise TypeError(
            f"{name} returned an awaitable: hooks and predicates must be plain functions"
        )
    return value


@dataclass(frozen=True)
class RetryState:
    """What the hooks of a :class:`RetryPolicy` are told about a failed attempt.

    ``attempt`` is the attempt that just failed (1-based); ``exception`` what it
    raised, or ``None`` when ``retry_on_result`` rejected its return value
    ``result`` (else ``None``); ``delay`` the wait before the next attempt
    (``None`` in ``on_give_up``); ``elapsed`` the seconds since the first attempt.
    """

    step: str
    attempt: int
    exception: BaseException | None
    result: Any
    delay: float | None
    elapsed: float


@dataclass(frozen=True)
class Decision:
    """The policy's verdict on a failed attempt (see :meth:`RetryPolicy.decide`).

    ``retry``: wait ``state.delay`` seconds and try again. Otherwise the step ends:
    ``exhausted`` says whether the budget ran out (``on_give_up`` applies) or
    the failure is one the policy never retries.
    """

    retry: bool
    exhausted: bool
    state: RetryState


@dataclass(frozen=True)
class RetryPolicy:
    """How a failed step is tried again.

    An attempt fails when it raises an ``Exception`` or when ``retry_on_result``
    returns true for its return value. After failed attempt ``n`` (1-based):

    * an exception that is an instance of ``give_up_on``, of none of
      ``retry_on``, or that ``retry_if`` rejects, is raised at once (no
      ``on_give_up``);
    * when ``n == max_attempts``, or waiting would pass ``max_elapsed`` seconds
      since the first attempt, the budget is spent: ``on_give_up(state)``'s
      value becomes the step's result if it is set, else the exception is
      raised (or :class:`RetriesExhausted` for a rejected result);
    * otherwise ``before_retry(state)`` runs, the step waits the delay and tries again.

    The delay is ``delay_from(exc)`` when that returns a number, else
    ``delays[n - 1]`` when a schedule is given (its last delay repeating), else
    ``initial_delay * backoff ** (n - 1) + increment * (n - 1)``, kept within
    ``[min_delay, max_delay]``; with ``jitter`` a uniform draw from half of it
    up to it, with ``full_jitter`` from ``min_delay`` up to it; then a uniform
    draw in ``[0, random_delay]`` is added (after the cap).

    ``max_attempts=None`` retries until ``max_elapsed`` runs out, or forever.
    Inside a workflow the attempt count and the next attempt's time are
    durable, and ``on_give_up``'s value is checkpointed as the step's output.
    """

    max_attempts: int | None = 3
    initial_delay: float = 1.0
    backoff: float = 2.0
    max_delay: float = 60.0
    jitter: bool = False
    retry_on: tuple[type[BaseException], ...] = field(default=(Exception,))
    give_up_on: tuple[type[BaseException], ...] = field(default=())
    max_elapsed: float | None = None
    retry_if: Callable[[BaseException], bool] | None = None
    retry_on_result: Callable[[Any], bool] | None = None
    increment: float = 0.0
    random_delay: float = 0.0
    delay_from: Callable[[BaseException], float | None] | None = None
    before_retry: Callable[[RetryState], None] | None = None
    on_give_up: Callable[[RetryState], Any] | None = None
    min_delay: float = 0.0
    full_jitter: bool = False
    delays: Sequence[float] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "retry_on", _as_tuple(self.retry_on))
        object.__setattr__(self, "give_up_on", _as_tuple(self.give_up_on))
        object.__setattr__(self, "delays", _as_schedule(self.delays))
        if self.delays and max(self.delays) > self.max_delay:
            raise ValueError(
                f"delays holds {max(self.delays):g} s, longer than max_delay "
                f"({self.max_delay:g} s), which caps every delay: set "
                f"max_delay={max(self.delays):g} (or more) to wait that long"
            )
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1 (or None for no limit)")
        if self.initial_delay < 0 or self.max_delay < 0:
            raise ValueError("delays must not be negative")
        if self.initial_delay > self.max_delay:
            raise ValueError(
                f"initial_delay ({self.initial_delay:g} s) is longer than max_delay "
                f"({self.max_delay:g} s), which caps every delay: set "
                f"max_delay={self.initial_delay:g} (or more) to wait that long"
            )
        if self.backoff <= 0:
            raise ValueError("backoff must be positive (1.0 keeps the delay constant)")
        if self.max_elapsed is not None and self.max_elapsed < 0:
            raise ValueError("max_elapsed must not be negative")
        if self.increment < 0:
            raise ValueError(f"increment must not be negative (got {self.increment:g})")
        if self.min_delay < 0:
            raise ValueError(f"min_delay must not be negative (got {self.min_delay:g})")
        if self.min_delay > self.max_delay:
            raise ValueError(
                f"min_delay ({self.min_delay:g} s) is longer than max_delay ({self.max_delay:g} s)"
            )
        if self.jitter and self.full_jitter:
            raise ValueError("jitter and full_jitter are two draws of one delay: choose one")
        if self.random_delay < 0:
            raise ValueError(f"random_delay must not be negative (got {self.random_delay:g})")
        for name in ("retry_if", "retry_on_result", "delay_from", "before_retry", "on_give_up"):
            hook = getattr(self, name)
            if hook is not None and not callable(hook):
                raise ValueError(f"{name} must be a callable or None, got {short_repr(hook)}")

    # -- delays --

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt ``attempt`` (1-based) by the delay law:
        capped by ``max_delay``, raised to ``min_delay``, then ``jitter`` (or
        ``full_jitter``) and ``random_delay`` applied."""
        steps = max(attempt - 1, 0)
        if self.delays:
            base = self.delays[min(steps, len(self.delays) - 1)]
        else:
            try:
                base = self.initial_delay * self.backoff**steps + self.increment * steps
            except OverflowError:
                base = self.max_delay
        base = float(max(self.min_delay, min(self.max_delay, base)))
        if self.jitter and base > 0:
            base = random.uniform(base / 2, base)
        elif self.full_jitter and base > self.min_delay:
            base = random.uniform(self.min_delay, base)
        if self.random_delay > 0:
            base += random.uniform(0, self.random_delay)
        return base

    def supplied_delay(self, exc: BaseException | None) -> float | None:
        """The delay ``delay_from`` reads from ``exc`` (capped by ``max_delay``), or ``None``."""
        if exc is None or self.delay_from is None:
            return None
        supplied = _plain("delay_from", self.delay_from(exc))
        if supplied is None or isinstance(supplied, bool):  # a predicate's answer: the law
            return None
        if isinstance(supplied, datetime.timedelta):
            supplied = supplied.total_seconds()
        if not isinstance(supplied, (int, float)):
            raise TypeError(
                f"delay_from returned {short_repr(supplied)}: expected seconds (a number) or None"
            )
        if math.isnan(supplied):
            raise ValueError("delay_from returned NaN: expected seconds (a number) or None")
        return min(self.max_delay, max(0.0, float(supplied)))

    # -- decisions --

    def retryable(self, exc: BaseException) -> bool:
        """Whether ``exc`` may be retried at all (ignoring the attempt budget)."""
        if isinstance(exc, self.give_up_on):
            return False
        if not isinstance(exc, self.retry_on):
            return False
        return self.retry_if is None or bool(_plain("retry_if", self.retry_if(exc)))

    def rejects(self, result: Any) -> bool:
        """Whether a returned value counts as a failed attempt (``retry_on_result``)."""
        if self.retry_on_result is None:
            return False
        return bool(_plain("retry_on_result", self.retry_on_result(result)))

    def next_delay(self, exc: BaseException, attempt: int, elapsed: float) -> float | None:
        """The delay before the next attempt, or ``None`` when ``exc`` must be raised."""
        if not self.retryable(exc):
            return None
        return self.budget_delay(attempt, elapsed, exc)

    def budget_delay(
        self, attempt: int, elapsed: float, exc: BaseException | None = None
    ) -> float | None:
        """The delay after failed attempt ``attempt`` if the budget (attempts, elapsed)
        allows, else ``None``; ``exc`` may supply the delay (``delay_from``)."""
        if self.max_attempts is not None and attempt >= self.max_attempts:
            return None
        delay = self.supplied_delay(exc)
        if delay is None:
            delay = self.delay(attempt)
        if self.max_elapsed is not None and elapsed + delay > self.max_elapsed:
            return None
        return delay

    def decide(
        self,
        step: str,
        attempt: int,
        elapsed: float,
        exception: BaseException | None = None,
        result: Any = None,
    ) -> Decision:
        """The verdict on failed attempt ``attempt`` of ``step``: it raised
        ``exception``, or (``exception=None``) returned ``result``, which
        ``retry_on_result`` rejected."""
        if exception is not None and not self.retryable(exception):
            return Decision(False, False, RetryState(step, attempt, exception, None, None, elapsed))
        delay = self.budget_delay(attempt, elapsed, exception)
        state = RetryState(step, attempt, exception, result, delay, elapsed)
        return Decision(delay is not None, delay is None, state)

    def prepare_retry(self, decision: Decision) -> None:
        """Run ``before_retry`` before the wait that follows a retried attempt."""
        if self.before_retry is not None:
            done = self.before_retry(decision.state)
            if inspect.iscoroutine(done):  # an `async def` hook: its body never ran
                _plain("before_retry", done)
            # any other value is ignored: a plain function that scheduled work and
            # returned its future (`asyncio.shield(...)`) has done what it does

    def give_up(self, decision: Decision) -> Any:
        """End a step whose attempt failed for good: ``on_give_up``'s value when the
        budget ran out and it is set; else raise the attempt's exception, or
        :class:`RetriesExhausted` for a rejected result."""
        state = decision.state
        if decision.exhausted and self.on_give_up is not None:
            return _plain("on_give_up", self.on_give_up(state))
        if state.exception is not None:
            raise state.exception
        raise RetriesExhausted(state.step, state.attempt, state.result)


NO_RETRY = RetryPolicy(max_attempts=1)
"""The policy of a step declared without ``retry=``: one attempt."""

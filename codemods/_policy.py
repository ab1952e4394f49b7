"""The retry policy a codemod proves from legacy code, and how it is written out.

:class:`Policy` mirrors ``toolkit.RetryPolicy`` field for field but holds the
exception classes as source text, so the codemods can build the decorator
``@step(retry=RetryPolicy(...))`` without importing the code they rewrite.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import libcst as cst

#: ``RetryPolicy`` defaults; a field equal to its default is still written out
#: when it carries meaning for a reader (attempts, delays), see :meth:`Policy.to_call`.
DEFAULT_MAX_DELAY = 60.0


class NotABackoff(ValueError):
    """The delays between attempts do not follow a constant or exponential law."""


@dataclass
class Policy:
    """A retry policy in source form: what ``RetryPolicy(...)`` will be called with."""

    max_attempts: int | None = 3
    initial_delay: float = 0.0
    backoff: float = 1.0
    max_delay: float | None = None
    jitter: bool = False
    retry_on: list[str] = field(default_factory=lambda: ["Exception"])
    give_up_on: list[str] = field(default_factory=list)
    max_elapsed: float | None = None
    #: linear growth (seconds added per attempt) and a uniform random addition
    increment: float = 0.0
    random_delay: float = 0.0
    #: the floor of every delay, and full jitter: each delay drawn uniformly from
    #: ``[min_delay, d]`` (tenacity's ``wait_exponential(min=...)``, ``wait_random_exponential``)
    min_delay: float = 0.0
    full_jitter: bool = False
    #: a schedule of delays in place of the law (``RetryPolicy(delays=...)``)
    delays: tuple[float, ...] = ()
    #: hooks, as source text (``lambda e: e.errno == 104``, ``self.reset``)
    retry_if: str | None = None
    retry_on_result: str | None = None
    delay_from: str | None = None
    before_retry: str | None = None
    on_give_up: str | None = None
    #: field -> source text to write instead of the number (a module constant's name)
    sources: dict[str, str] = field(default_factory=dict)
    #: the fields whose source is known only at run time (their numbers are stand-ins)
    runtime: set[str] = field(default_factory=set)
    #: the fields whose source names a module constant: their numbers are exact
    constants: set[str] = field(default_factory=set)

    def to_call(self, policy_name: str = "RetryPolicy") -> cst.Call:
        """Build ``RetryPolicy(...)``; every field a reader needs is explicit."""
        src = self.sources
        args: list[str] = [f"max_attempts={src.get('max_attempts', repr(self.max_attempts))}"]
        max_delay = self.max_delay
        if self.delays:
            shown = ", ".join(_num(d) for d in self.delays)
            args.append(f"delays=({shown}{',' if len(self.delays) == 1 else ''})")
            if max_delay is None and max(self.delays) > DEFAULT_MAX_DELAY:
                max_delay = max(self.delays)  # RetryPolicy refuses a delay above its cap
        else:
            args.append(f"initial_delay={src.get('initial_delay', _num(self.initial_delay))}")
            args.append(f"backoff={src.get('backoff', _num(self.backoff))}")
        if max_delay is None and self.backoff > 1 and self.initial_delay > 0:
            # Uncapped growth in the legacy code: keep it uncapped when the
            # attempts can outgrow the default cap of RetryPolicy.
            largest = self.largest_delay()
            if self.runtime & {"max_attempts", "max_elapsed", "initial_delay"}:
                largest = None  # grows with a run-time value: keep it uncapped
            if largest is None or largest > DEFAULT_MAX_DELAY:
                max_delay = largest if largest is not None else math.inf
        if max_delay is None and self.increment and self.backoff <= 1:
            largest = self.largest_delay()
            if any(
                k in src and k not in self.constants
                for k in ("max_attempts", "initial_delay", "increment")
            ):
                largest = None  # grows with a run-time value: keep it uncapped
            if largest is None or largest > DEFAULT_MAX_DELAY:
                max_delay = largest if largest is not None else math.inf
        if max_delay is None and self.backoff <= 1:
            # a constant delay above the default cap would be refused by RetryPolicy
            if "initial_delay" in src and "initial_delay" not in self.constants:
                max_delay = math.inf
            elif self.initial_delay > DEFAULT_MAX_DELAY:
                max_delay = self.initial_delay
                if "initial_delay" in src:  # the cap follows the constant
                    args.append(f"max_delay={src['initial_delay']}")
                    max_delay = None
        if "max_delay" in src:
            args.append(f"max_delay={src['max_delay']}")
        elif max_delay is not None and max_delay != DEFAULT_MAX_DELAY:
            args.append(f"max_delay={_num(max_delay)}")
        if self.jitter:
            args.append("jitter=True")
        if self.min_delay:
            args.append(f"min_delay={src.get('min_delay', _num(self.min_delay))}")
        if self.full_jitter:
            args.append("full_jitter=True")
        args.append(f"retry_on={_types(self.retry_on)}")
        if self.give_up_on:
            args.append(f"give_up_on={_types(self.give_up_on)}")
        if self.max_elapsed is not None:
            args.append(f"max_elapsed={src.get('max_elapsed', _num(self.max_elapsed))}")
        if self.increment:
            args.append(f"increment={src.get('increment', _num(self.increment))}")
        if self.random_delay:
            args.append(f"random_delay={src.get('random_delay', _num(self.random_delay))}")
        for hook in ("retry_if", "retry_on_result", "delay_from", "before_retry", "on_give_up"):
            value = getattr(self, hook)
            if value is not None:
                args.append(f"{hook}={value}")
        call = cst.parse_expression(f"{policy_name}({', '.join(args)})")
        assert isinstance(call, cst.Call)
        return call

    def summary(self) -> str:
        """A short human summary: ``5 attempts, 1s doubling to 60s, on ConnectionError``."""
        src = self.sources
        if "max_attempts" in src:
            parts = [f"max_attempts={src['max_attempts']}"]
        elif self.max_attempts is None:
            parts = ["unlimited attempts"]
        else:
            parts = [f"{self.max_attempts} attempt{'s' if self.max_attempts != 1 else ''}"]
        first = src.get("initial_delay") or _secs(self.initial_delay)
        if self.delays:
            shown = ", ".join(_secs(d) for d in self.delays)
            delay = f"delays {shown}"
            if self.max_attempts is None or self.max_attempts - 1 > len(self.delays):
                delay += f" then {_secs(self.delays[-1])} each"
        elif self.initial_delay == 0 and "initial_delay" not in src:
            delay = "no delay"
        elif self.backoff == 1 and "backoff" not in src:
            delay = f"{first} apart"
        elif self.backoff == 2:
            delay = f"{first} doubling"
        else:
            delay = f"{first} x{src.get('backoff') or f'{self.backoff:g}'}"
        cap = src.get("max_delay") or (
            _secs(self.max_delay) if self.max_delay is not None and self.backoff > 1 else ""
        )
        if cap and delay != "no delay":
            delay += f" to {cap}"
        if self.increment:
            delay += f" growing by {self.increment:g}s"
        if self.random_delay:
            delay += f" plus up to {self.random_delay:g}s at random"
        if self.min_delay:
            delay += f" at least {self.min_delay:g}s"
        if self.jitter:
            delay += " with jitter"
        if self.full_jitter:
            delay += " with full jitter"
            if self.min_delay:
                delay += f" from {self.min_delay:g}s"
        if self.delay_from and delay == "no delay":
            delay = "the delay the failure supplies"
        parts.append(delay)
        if self.max_elapsed is not None:
            parts.append(f"within {src.get('max_elapsed') or _secs(self.max_elapsed)}")
        parts.append("on " + (", ".join(self.retry_on) or "no exception"))
        if self.give_up_on:
            parts.append("not on " + ", ".join(self.give_up_on))
        if self.retry_if:
            parts.append("if " + self.retry_if.split(":", 1)[-1].strip())
        if self.retry_on_result:
            parts.append("on results " + self.retry_on_result)
        if self.delay_from:
            parts.append("delay from " + self.delay_from.split(":", 1)[-1].strip())
        if self.before_retry:
            parts.append("between attempts " + self.before_retry)
        if self.on_give_up:
            parts.append("at the end " + self.on_give_up)
        return " ".join(", ".join(parts).split())  # one line, whatever the source's layout

    def largest_delay(self) -> float | None:
        """The longest delay the policy can ask for before its last attempt, None if unbounded."""
        if self.delays:
            return max(self.delays)
        if self.increment:
            if self.max_attempts is None:
                return None
            steps = max(self.max_attempts - 2, 0)
            return float(self.initial_delay * self.backoff**steps + self.increment * steps)
        if self.backoff <= 1 or self.initial_delay == 0:
            return self.initial_delay
        if self.max_attempts is None:
            if self.max_elapsed is not None:
                return self.max_elapsed
            return None
        if self.max_attempts < 2:
            return 0.0
        try:
            return float(self.initial_delay * self.backoff ** (self.max_attempts - 2))
        except OverflowError:
            return None

    def decorator(self, step_name: str = "step", policy_name: str = "RetryPolicy") -> cst.Decorator:
        """``@step(retry=RetryPolicy(...))``, one argument a line when it is long."""
        call = cst.Module(body=[]).code_for_node(self.to_call(policy_name))
        text = f"@{step_name}(retry={call})"
        if len(text) > 88:
            inner = call[len(policy_name) + 1 : -1]
            lines = "".join(f"        {arg},\n" for arg in _split_args(inner))
            text = f"@{step_name}(\n    retry={policy_name}(\n{lines}    )\n)"
        stmt = cst.parse_statement(f"{text}\ndef _(): pass\n")
        assert isinstance(stmt, cst.FunctionDef)
        return stmt.decorators[0]


def _secs(value: float) -> str:
    return "unbounded" if math.isinf(value) else f"{value:g}s"


def _split_args(text: str) -> list[str]:
    """Split ``a=1, b=(x, y)`` at top-level commas."""
    out, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            out.append(text[start:i].strip())
            start = i + 1
    if text[start:].strip():
        out.append(text[start:].strip())
    return out


def _num(value: float) -> str:
    if math.isinf(value):
        return 'float("inf")'
    if float(value).is_integer() and abs(value) < 1e15:
        return f"{float(value):.1f}"
    return repr(round(float(value), 6))


#: exception classes of the standard library spelled in lower case
_LOWERCASE_CLASSES = frozenset(
    {
        "socket.timeout",
        "socket.error",
        "socket.gaierror",
        "socket.herror",
        "select.error",
        "os.error",
        "timeout",
        "gaierror",
        "herror",
    }
)


def looks_like_class(source: str) -> bool:
    """``ConnectionError``, ``requests.RequestException``: a CapWords last part. A name in
    capitals (``RETRYABLE``) or lower case (``self.retry_on``) may hold a tuple of classes."""
    if source in _LOWERCASE_CLASSES:
        return True
    last = source.rsplit(".", 1)[-1]
    return last[:1].isupper() and not last.isupper() and last.isidentifier()


class AmbiguousTypes(ValueError):
    """Several exception expressions, one of which may be a tuple: they cannot be joined."""


def check_types(items: list[str]) -> None:
    """Raise :class:`AmbiguousTypes` unless ``items`` can be written as one tuple."""
    if len(items) > 1:
        for item in items:
            if not looks_like_class(item):
                raise AmbiguousTypes(f"exception types `{item}` may be a tuple")


def _types(items: list[str]) -> str:
    """``(A,)`` / ``(A, B)``; a lone expression that may hold a tuple is written as is
    (``RetryPolicy`` accepts a class or a tuple)."""
    if len(items) == 1:
        return f"({items[0]},)" if looks_like_class(items[0]) else items[0]
    return f"({', '.join(items)})"


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def fit_delays(delays: list[float], unbounded: bool = False) -> tuple[float, float, float | None]:
    """Fit the delays slept after attempts 1, 2, ... to ``(initial_delay, backoff, max_delay)``.

    Accepts exactly the sequences ``min(cap, initial * backoff ** (n - 1))``; raises
    :class:`NotABackoff` for anything else (linear growth, shrinking delays, ...).
    ``unbounded`` says the legacy loop never stops, so growth without a cap is refused.
    """
    if not delays:
        return 0.0, 1.0, None
    if any(d < 0 for d in delays):
        raise NotABackoff("a negative delay")
    first = delays[0]
    if all(_close(d, first) for d in delays):
        return first, 1.0, None
    if first == 0 or len(delays) < 2:
        raise NotABackoff("delays " + _show(delays))
    ratio = delays[1] / first
    if ratio <= 1:
        raise NotABackoff("delays " + _show(delays))
    cap = max(delays)
    for n, d in enumerate(delays):
        expected = min(cap, first * ratio**n)
        if not _close(d, expected):
            raise NotABackoff("delays " + _show(delays))
    uncapped_last = first * ratio ** (len(delays) - 1)
    capped = not _close(uncapped_last, cap)
    if unbounded and not capped:
        raise NotABackoff("delays grow without bound")
    return first, ratio, (cap if capped else None)


def fit_linear(delays: list[float]) -> tuple[float, float] | None:
    """``(first, increment)`` when the delays grow by the same step each time (``5, 10, 15``),
    else None. Needs at least two delays and a positive step."""
    if len(delays) < 2 or any(d < 0 for d in delays):
        return None
    step = delays[1] - delays[0]
    if step <= 0:
        return None
    for n, d in enumerate(delays):
        if not _close(d, delays[0] + step * n):
            return None
    return delays[0], step


def _show(delays: list[float]) -> str:
    shown = ", ".join(f"{d:g}" for d in delays[:5])
    return shown + (", ..." if len(delays) > 5 else "")

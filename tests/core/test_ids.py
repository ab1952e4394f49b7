"""Ids are validated once, before any SQL, the same way on SQLite and PostgreSQL.

A NUL character was cut by PostgreSQL (``"job\\x00one"`` stored as ``"job"``,
so a later ``start(workflow_id="job")`` returned the other run); over-long ids
and lone surrogates raised raw driver errors of different types per entry point.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from toolkit import Durable
from toolkit.errors import InvalidIdError
from toolkit.ids import MAX_ID_BYTES

BAD_IDS = {
    "nul": ("job\x00one", "NUL character"),
    "surrogate": ("job\udc80", "lone surrogate"),
    "too-long": ("x" * (MAX_ID_BYTES + 1), f"at most {MAX_ID_BYTES}"),
    "multibyte-too-long": ("é" * (MAX_ID_BYTES // 2 + 1), f"at most {MAX_ID_BYTES}"),
    "empty": ("", "must not be empty"),
    "not-a-string": (42, "must be a string"),
}


def _declare(app: Durable) -> tuple[Any, Any]:
    q = app.queue("ids")

    @app.workflow(name="echo")
    def echo(x: int) -> int:
        return x

    return q, echo


def _entry_points(app: Durable, q: Any, echo: Any) -> dict[str, Callable[[Any], Any]]:
    return {
        "start": lambda wid: app.start(echo, 1, workflow_id=wid),
        "enqueue": lambda wid: q.enqueue(echo, 1, workflow_id=wid),
        "enqueue-dedup": lambda wid: q.enqueue(echo, 1, deduplication_id=wid),
        "fork-new-id": lambda wid: app.fork("base", 1, new_id=wid),
        "fork-source": lambda wid: app.fork(wid, 1),
        "handle": app.handle,
        "get_workflow": app.get_workflow,
        "cancel": app.cancel,
        "resume": app.resume,
        "send": lambda wid: app.send(wid, "topic", 1),
        "send-topic": lambda wid: app.send("base", wid, 1),
        "get_event": lambda wid: app.get_event("base", wid, timeout=0),
    }


@pytest.mark.parametrize("case", sorted(BAD_IDS))
def test_bad_ids_are_refused_before_any_sql(make_app, case):
    app = make_app()
    q, echo = _declare(app)
    assert app.run(echo, 7, workflow_id="base") == 7
    before = [r.workflow_id for r in app.list_workflows()]
    bad, words = BAD_IDS[case]
    for entry, call in _entry_points(app, q, echo).items():
        with pytest.raises(InvalidIdError, match=words) as info:
            call(bad)
        assert "\n" not in str(info.value), entry
        assert len(str(info.value)) < 200, entry
    assert [r.workflow_id for r in app.list_workflows()] == before


def test_a_nul_id_never_aliases_another(make_app):
    app = make_app()
    _q, echo = _declare(app)
    with pytest.raises(InvalidIdError):
        app.start(echo, 1, workflow_id="job\x00one")
    assert app.run(echo, 2, workflow_id="job") == 2  # a run of its own, not the other one


def test_the_longest_allowed_id_works(make_app):
    app = make_app()
    q, echo = _declare(app)
    longest = "é" * (MAX_ID_BYTES // 2)  # exactly MAX_ID_BYTES bytes in UTF-8
    assert app.run(echo, 3, workflow_id=longest) == 3
    assert app.get_workflow(longest).workflow_id == longest
    handle = q.enqueue(echo, 4, workflow_id="q" * MAX_ID_BYTES)
    assert app.get_workflow(handle.workflow_id).status == "enqueued"


def test_enqueue_many_refuses_the_whole_batch(make_app):
    app = make_app()
    q, echo = _declare(app)
    with pytest.raises(InvalidIdError):
        app._enqueue(q, echo, [((1,), {}), ((2,), {})], workflow_ids=["fine", "bad\x00"])
    assert app.list_workflows() == []

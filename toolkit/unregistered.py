"""Workflows no worker will run: their name is not registered by the app that serves them.

A worker looks every :data:`REPORT_EVERY` seconds for workflows waiting for a
takeover, or enqueued on its queues, whose name its app does not register. It
says so once per name in one WARNING line, and marks each such workflow with the
event :data:`UNREGISTERED_EVENT` so that ``durable workflows show`` tells why it
waits. Nothing else changes: the workflow runs as soon as a worker whose app
registers its name sees it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .records import from_ms
from .storage import now_ms

if TYPE_CHECKING:
    from .app import Durable
    from .storage.base import Storage

REPORT_EVERY = 10.0
"""Seconds between two looks of a worker for workflows its app does not register."""

UNREGISTERED_EVENT = "toolkit.unregistered"
"""The event a worker sets on a workflow it found waiting whose name its app does not
register: ``{"owner": ..., "at": ms}``."""

log = logging.getLogger("toolkit.worker")


class UnregisteredReporter:
    """Says once per workflow name that workflows wait which ``app`` does not register,
    and marks each of them for ``workflows show``. ``app_label`` names the app in the
    log line (``module:attribute`` from the command line)."""

    def __init__(self, app: Durable, queues: Sequence[str], app_label: str | None = None) -> None:
        self.app, self.queues = app, list(queues)
        self.app_label = app_label or "this worker's app"
        self.warned: set[str] = set()
        self.marked: set[str] = set()

    def __call__(self) -> None:
        from .storage.views import unregistered

        app = self.app
        storage = app.storage
        found = unregistered(storage, list(app._workflows), self.queues)
        fresh = [wid for ids in found.values() for wid in ids if wid not in self.marked]
        if fresh:
            mark = json.dumps({"owner": app.executor.owner, "at": now_ms()})
            with storage.transaction() as conn:
                for wid in fresh:
                    storage.set_event(conn, wid, UNREGISTERED_EVENT, mark)
            self.marked.update(fresh)
            if len(self.marked) > 100_000:
                self.marked.clear()
        for name, ids in sorted(found.items()):
            if name in self.warned:
                continue
            self.warned.add(name)
            log.warning(
                "%d workflow(s) named %r wait for a worker, but %s does not register %r: "
                "this worker never runs them (first: %s); deploy the code that declares it, "
                "or cancel them",
                len(ids),
                name,
                self.app_label,
                name,
                ids[0],
            )


def marks(storage: Storage, workflow_id: str) -> dict[str, datetime]:
    """Which worker (owner id) last reported ``workflow_id`` unregistered, and when."""
    found, text = storage.get_event(workflow_id, UNREGISTERED_EVENT)
    if not found or not text:
        return {}
    try:
        value: Any = json.loads(text)
        at = from_ms(int(value["at"]))
        return {str(value["owner"]): at} if at is not None else {}
    except (ValueError, KeyError, TypeError):
        return {}

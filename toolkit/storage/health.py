"""Whether the database answers: one log line when it goes, one when it is back.

Every connection error the storage translates marks the database down; the
next statement that succeeds marks it back. Work of this process waits out an
outage (see ``Executor``); what it must *not* do right after one is take over
other processes' workflows: their owners may be alive and simply not yet
reconnected. :attr:`DatabaseHealth.settled` says when enough time has passed
since the database came back for a live peer to have re-taken its liveness
lock and renewed its leases.
"""

from __future__ import annotations

import logging
import threading
import time

log = logging.getLogger("toolkit.storage")


class DatabaseHealth:
    """The state of one database as this process sees it."""

    def __init__(self, describe: str, settle_seconds: float = 5.0) -> None:
        self.describe = describe
        self.settle_seconds = settle_seconds
        self._lock = threading.Lock()
        self.down_since: float | None = None
        self._back_at = float("-inf")

    @property
    def down(self) -> bool:
        return self.down_since is not None

    @property
    def settled(self) -> bool:
        """Up, and up long enough that live peers have reconnected since any outage."""
        return self.down_since is None and time.monotonic() - self._back_at >= self.settle_seconds

    def failed(self, reason: str) -> None:
        """A connection error was seen: log once when the database goes."""
        with self._lock:
            if self.down_since is not None:
                return
            self.down_since = time.monotonic()
        log.warning(
            "database %s is unavailable (%s); running workflows wait for it and workers "
            "keep retrying",
            self.describe,
            reason,
        )

    def succeeded(self) -> None:
        """A statement went through: log once when the database is back."""
        if self.down_since is None:  # the hot path: one attribute read
            return
        with self._lock:
            since = self.down_since
            if since is None:
                return
            self.down_since = None
            self._back_at = time.monotonic()
        log.warning("database %s is back after %.1fs", self.describe, time.monotonic() - since)

    def session_lost(self) -> None:
        """This process's liveness session was gone (a restart, or the connection was
        killed): peers may have lost theirs too, so wait before judging them."""
        with self._lock:
            self._back_at = time.monotonic()
        if self.down_since is None:
            log.warning(
                "the liveness session to database %s was lost (restart or killed "
                "connection); it is taken again",
                self.describe,
            )

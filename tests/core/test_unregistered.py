"""A worker says which waiting workflows its app does not register, and marks them."""

from __future__ import annotations

import logging
import threading

from toolkit import Durable
from toolkit.storage import open_storage
from toolkit.unregistered import marks
from toolkit.worker import Worker


def test_a_library_worker_reports_a_queued_workflow_its_app_does_not_register(
    make_app, db_url, caplog
):
    producer = make_app()
    producer.queue("emails")

    @producer.workflow(name="emails.welcome")
    def welcome(to: str) -> str:
        return to

    handle = producer.queue("emails").enqueue(welcome, "a@example.com")
    producer.close()

    consumer: Durable = make_app()
    consumer.queue("emails")  # serves the queue, but registers no "emails.welcome"
    caplog.set_level(logging.WARNING, logger="toolkit.worker")
    worker = Worker(consumer, report_every=3600, app_label="shop.jobs:app").start()
    try:
        for _ in range(200):
            if any("emails.welcome" in r.getMessage() for r in caplog.records):
                break
            threading.Event().wait(0.05)
    finally:
        worker.stop(grace=1)
    (line,) = [r.getMessage() for r in caplog.records if "emails.welcome" in r.getMessage()]
    assert "shop.jobs:app does not register 'emails.welcome'" in line
    assert handle.workflow_id in line
    storage = open_storage(db_url)
    try:
        assert list(marks(storage, handle.workflow_id)) == [consumer.executor.owner]
    finally:
        storage.dispose()

"""A RabbitMQ dead-letter queue imported as failed workflows, against the real broker.

Each test declares its own uuid-named exchanges and queues (a working queue
whose dead-letter exchange feeds the dead-letter queue) and deletes them after.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pika
import pika.exceptions
import pytest

from adapters.dead_letter import (
    DeadLetterError,
    get_dead_letter,
    list_dead_letters,
    retry_dead_letter,
)
from adapters.rabbitmq import RabbitMQDeadLetters
from toolkit import Durable

AMQP_URL = os.environ.get("DURABLE_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
ROOT = Path(__file__).resolve().parents[2]


def _connect() -> pika.BlockingConnection:
    return pika.BlockingConnection(pika.URLParameters(AMQP_URL))


@pytest.fixture(scope="module")
def broker() -> str:
    try:
        _connect().close()
    except pika.exceptions.AMQPError as exc:
        pytest.skip(f"no RabbitMQ at {AMQP_URL.split('@')[-1]}: {type(exc).__name__} {exc}")
    return AMQP_URL


@dataclass
class Topology:
    channel: Any
    exchange: str
    routing_key: str
    work: str
    dlq: str

    def publish(self, body: bytes, **props: Any) -> None:
        self.channel.basic_publish(
            self.exchange, self.routing_key, body, pika.BasicProperties(**props)
        )

    def ready(self, queue: str) -> int:
        return int(self.channel.queue_declare(queue, passive=True).method.message_count)

    def wait_ready(self, queue: str, count: int) -> None:
        deadline = time.monotonic() + 20
        while self.ready(queue) != count:
            assert time.monotonic() < deadline, f"{queue} never held {count} message(s)"
            time.sleep(0.02)

    def reject_all(self, count: int) -> None:
        """Take ``count`` messages from the working queue and reject them: dead letters."""
        self.wait_ready(self.work, count)
        for _ in range(count):
            method, _props, _body = self.channel.basic_get(self.work)
            self.channel.basic_reject(method.delivery_tag, requeue=False)
        self.wait_ready(self.dlq, count)

    def dead_letter(self, *bodies: dict[str, Any]) -> None:
        for i, body in enumerate(bodies):
            self.publish(
                json.dumps(body).encode(),
                message_id=f"m-{i}-{uuid.uuid4().hex[:6]}",
                content_type="application/json",
                delivery_mode=2,
                headers={"tenant": "acme"},
            )
        self.reject_all(len(bodies))


@pytest.fixture
def topology(broker: str) -> Iterator[Topology]:
    tag = uuid.uuid4().hex[:10]
    exchange, dlx = f"test.orders.{tag}", f"test.orders.dlx.{tag}"
    work, dlq = f"test.orders.work.{tag}", f"test.orders.dlq.{tag}"
    connection = _connect()
    channel = connection.channel()
    channel.exchange_declare(exchange, "direct")
    channel.exchange_declare(dlx, "fanout")
    channel.queue_declare(work, arguments={"x-dead-letter-exchange": dlx})
    channel.queue_bind(work, exchange, "order.created")
    channel.queue_declare(dlq)
    channel.queue_bind(dlq, dlx)
    try:
        yield Topology(channel, exchange, "order.created", work, dlq)
    finally:
        for queue in (work, dlq):
            channel.queue_delete(queue)
        for name in (exchange, dlx):
            channel.exchange_delete(name)
        connection.close()


def _handler(app: Durable, seen: list[Any]) -> Any:
    @app.workflow(name="process_order")
    def process_order(order: dict[str, Any]) -> str:
        seen.append(order)
        return f"processed {order['order']}"

    return process_order


def test_import_keeps_x_death_and_acks_after_commit(app: Durable, topology: Topology) -> None:
    topology.dead_letter({"order": 1}, {"order": 2}, {"order": 3})
    adapter = RabbitMQDeadLetters(app, url=AMQP_URL, queue=topology.dlq, workflow=_handler(app, []))

    result = adapter.import_messages(batch=2)
    assert len(result.imported) == 3 and result.removed == 3
    assert topology.ready(topology.dlq) == 0

    letters = list_dead_letters(app)
    assert {d.workflow_id for d in letters} == set(result.imported)
    letter = get_dead_letter(app, result.imported[0])
    assert (letter.status, letter.name) == ("failed", "process_order")
    assert letter.source == f"rabbitmq {topology.dlq}"
    assert letter.error_type == "rabbitmq rejected"
    assert topology.work in letter.error_message
    details = letter.details
    assert (details["exchange"], details["routing_key"]) == (
        topology.exchange,
        topology.routing_key,
    )
    (death,) = details["x_death"]
    assert (death["reason"], death["count"], death["queue"]) == ("rejected", 1, topology.work)
    assert death["routing-keys"] == [topology.routing_key]
    assert details["first_death"]["queue"] == topology.work
    assert details["message_id"].startswith("m-")
    death_time = death["time"]["$datetime"]
    assert letter.failed_at.isoformat() == death_time
    payloads = sorted(json.loads(d.inputs or "")["args"][0]["order"] for d in letters)
    assert payloads == [1, 2, 3]

    assert adapter.import_messages().imported == []  # the queue is empty now


def test_shadow_gives_the_messages_back(app: Durable, topology: Topology) -> None:
    topology.dead_letter({"order": 1}, {"order": 2})
    adapter = RabbitMQDeadLetters(app, url=AMQP_URL, queue=topology.dlq, workflow="p")
    shadow = adapter.import_messages(mode="shadow")
    assert len(shadow.imported) == 2 and shadow.shadow
    assert app.list_workflows() == []
    topology.wait_ready(topology.dlq, 2)
    real = adapter.import_messages()
    assert sorted(real.imported) == sorted(shadow.imported)  # the same ids: a redelivery


def test_a_redelivered_message_imports_as_a_no_op(app: Durable, topology: Topology) -> None:
    topology.dead_letter({"order": 7})
    adapter = RabbitMQDeadLetters(app, url=AMQP_URL, queue=topology.dlq, workflow="p")
    # Import it by hand and never ack: the broker delivers it again.
    connection = _connect()
    channel = connection.channel()
    method, props, body = channel.basic_get(topology.dlq, auto_ack=False)
    row = adapter._row(method, props, body)
    assert app.storage.insert_failed_workflows([row]) == {row["workflow_id"]}
    connection.close()
    topology.wait_ready(topology.dlq, 1)

    result = adapter.import_messages()
    assert (result.imported, result.already, result.removed) == ([], [row["workflow_id"]], 1)
    assert topology.ready(topology.dlq) == 0
    assert [w.workflow_id for w in app.list_workflows()] == [row["workflow_id"]]


def test_retry_runs_the_handler(app: Durable, topology: Topology) -> None:
    seen: list[Any] = []
    adapter = RabbitMQDeadLetters(
        app, url=AMQP_URL, queue=topology.dlq, workflow=_handler(app, seen)
    )
    topology.dead_letter({"order": 42})
    (wid,) = adapter.import_messages().imported
    handle = retry_dead_letter(app, wid)
    assert handle.result(timeout=30) == "processed 42"
    assert handle.status() == "succeeded"
    assert seen == [{"order": 42}]
    assert topology.ready(topology.work) == 0  # nothing republished


def test_retry_republishes_to_the_original_exchange(app: Durable, topology: Topology) -> None:
    adapter = RabbitMQDeadLetters(app, url=AMQP_URL, queue=topology.dlq)
    topology.dead_letter({"order": 9})
    (wid,) = adapter.import_messages().imported
    record = app.get_workflow(wid)
    assert record.name == f"rabbitmq.republish:{topology.dlq}"
    message_id = get_dead_letter(app, wid).details["message_id"]

    handle = retry_dead_letter(app, wid)
    output = handle.result(timeout=30)
    assert (output["exchange"], output["routing_key"]) == (topology.exchange, topology.routing_key)
    assert handle.status() == "succeeded"

    topology.wait_ready(topology.work, 1)
    method, props, body = topology.channel.basic_get(topology.work)
    assert json.loads(body) == {"order": 9}
    assert props.message_id == message_id
    assert props.content_type == "application/json"
    assert props.headers == {"tenant": "acme", "x-durable-republished": True}
    # Rejected again, it is a new dead letter: a new workflow, not a no-op.
    topology.channel.basic_reject(method.delivery_tag, requeue=False)
    topology.wait_ready(topology.dlq, 1)
    (again,) = adapter.import_messages().imported
    assert again != wid


def test_a_missing_queue_or_broker_is_one_clear_error(app: Durable, topology: Topology) -> None:
    missing = RabbitMQDeadLetters(app, url=AMQP_URL, queue=f"{topology.dlq}.nope", workflow="p")
    with pytest.raises(DeadLetterError, match="does not exist"):
        missing.import_messages()
    down = RabbitMQDeadLetters(
        app, url="amqp://app:s3cret@127.0.0.1:1/%2F", queue=topology.dlq, workflow="p"
    )
    with pytest.raises(DeadLetterError, match="cannot connect to RabbitMQ") as info:
        down.import_messages()
    assert "s3cret" not in str(info.value)


CRASHING_IMPORT = """
import os, sys
from pika.adapters.blocking_connection import BlockingChannel

from toolkit import Durable
from adapters.rabbitmq import RabbitMQDeadLetters

def die_before_ack(self, *args, **kwargs):
    print("committed, dying before the ack", flush=True)
    os._exit(17)

BlockingChannel.basic_ack = die_before_ack
app = Durable(sys.argv[1])
RabbitMQDeadLetters(app, url=sys.argv[2], queue=sys.argv[3], workflow="p").import_messages(
    batch=2
)
"""


def test_crash_between_commit_and_ack_loses_and_duplicates_nothing(
    app: Durable, db_url: str, topology: Topology, tmp_path: Path
) -> None:
    topology.dead_letter({"order": 1}, {"order": 2}, {"order": 3})
    script = tmp_path / "crashing_import.py"
    script.write_text(textwrap.dedent(CRASHING_IMPORT), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, str(script), db_url, AMQP_URL, topology.dlq],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 17, proc.stderr
    assert "dying before the ack" in proc.stdout

    committed = {w.workflow_id for w in app.list_workflows()}
    assert len(committed) == 2  # the first batch committed, and was never acked
    topology.wait_ready(topology.dlq, 3)  # the broker gives every message back

    adapter = RabbitMQDeadLetters(app, url=AMQP_URL, queue=topology.dlq, workflow="p")
    result = adapter.import_messages(batch=2)
    assert set(result.already) == committed
    assert len(result.imported) == 1
    assert topology.ready(topology.dlq) == 0
    workflows = app.list_workflows()
    assert len(workflows) == 3
    orders = sorted(json.loads(w.inputs or "")["args"][0]["order"] for w in workflows)
    assert orders == [1, 2, 3]  # exactly one workflow per message

"""A RabbitMQ dead-letter queue imported as failed workflows (needs the ``rabbitmq`` extra: pika).

The dead-letter queue is the queue bound to the dead-letter exchange of the
working queues: RabbitMQ moves a message there when it is rejected, expires
or overflows, and records why in its ``x-death`` header. The importer reads
the messages, stores each as a failed workflow (with its ``x-death`` history,
original exchange and routing key) and acknowledges them only after that
import committed. A crash between the commit and the acknowledgement leaves
the message in the queue; RabbitMQ delivers it again and its import is a
no-op, because the workflow id is a digest of the message (its properties,
``x-death`` included, and its body), which a redelivery does not change.

Retrying an imported message either runs a durable handler workflow with the
message body as input (``workflow=``), or, without one, republishes the
message to its original exchange and routing key: a durable workflow with one
step that publishes with publisher confirms (at-least-once; the message keeps
its ``message_id``, so consumers can drop a duplicate).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pika
import pika.exceptions

from toolkit import Durable, RetryPolicy
from toolkit.storage import now_ms

from .dead_letter import DeadLetterError, ImportResult, Mode, dead_letter_row, to_ms, workflow_name

__all__ = ["REPUBLISH_PREFIX", "RabbitMQDeadLetters", "mask_amqp_url"]

REPUBLISH_PREFIX = "rabbitmq.republish:"
"""Name prefix of the workflows that republish a dead-lettered message (then the queue name)."""

_DEATH_HEADERS = ("x-death", "x-first-death-queue", "x-first-death-reason",
                  "x-first-death-exchange", "x-last-death-queue", "x-last-death-reason",
                  "x-last-death-exchange")  # fmt: skip

_PROPERTIES = ("content_type", "content_encoding", "headers", "delivery_mode", "priority",
               "correlation_id", "reply_to", "expiration", "message_id", "timestamp", "type",
               "user_id", "app_id", "cluster_id")  # fmt: skip


def mask_amqp_url(url: str) -> str:
    """The AMQP URL with its password hidden."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


# -- AMQP values <-> JSON ---------------------------------------------------------------------


def to_json(value: Any) -> Any:
    """An AMQP table value as JSON, tagging what JSON cannot hold (times, bytes, decimals)."""
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    if isinstance(value, datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, bytes | bytearray):
        return {"$bytes": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, Decimal):
        return {"$decimal": str(value)}
    return value


def from_json(value: Any) -> Any:
    """The inverse of :func:`to_json`."""
    if isinstance(value, list):
        return [from_json(v) for v in value]
    if isinstance(value, dict):
        if len(value) == 1:
            ((tag, inner),) = value.items()
            if tag == "$datetime":
                return datetime.fromisoformat(inner)
            if tag == "$bytes":
                return base64.b64decode(inner)
            if tag == "$decimal":
                return Decimal(inner)
        return {k: from_json(v) for k, v in value.items()}
    return value


def _properties(props: pika.BasicProperties) -> dict[str, Any]:
    return {
        name: to_json(getattr(props, name))
        for name in _PROPERTIES
        if getattr(props, name, None) is not None
    }


def _decode_body(body: bytes) -> tuple[Any, str]:
    """The message body as a payload: JSON if it is JSON, else text, else base64."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return base64.b64encode(body).decode("ascii"), "base64"
    try:
        return json.loads(text), "json"
    except ValueError:
        return text, "text"


def message_digest(properties: dict[str, Any], body: bytes) -> str:
    """What identifies a dead-lettered message across redeliveries."""
    canonical = json.dumps(properties, sort_keys=True, separators=(",", ":"), default=str)
    h = hashlib.sha256(canonical.encode("utf-8"))
    h.update(b"\0")
    h.update(body)
    return h.hexdigest()[:20]


class RabbitMQDeadLetters:
    """The dead-letter queue ``queue`` on the broker at ``url`` (``amqp://user:pw@host/vhost``).

    With ``workflow`` (a workflow of ``app``, or its registered name), an
    imported message is a failed workflow of that workflow whose input is the
    body (decoded JSON, else text); retrying it runs the workflow. Without it,
    the adapter registers the workflow ``rabbitmq.republish:<queue>`` in ``app``
    and retrying republishes the message where it was first published.
    ``publish_retry`` is the retry policy of the publishing step.
    """

    def __init__(
        self,
        app: Durable,
        *,
        url: str,
        queue: str,
        workflow: Callable[..., Any] | str | None = None,
        publish_retry: RetryPolicy | None = None,
    ) -> None:
        self.app = app
        self.url = url
        self.queue = queue
        self.republishes = workflow is None
        self.workflow = workflow_name(workflow) if workflow is not None else self.republish_name
        # One republish workflow per queue and app: a second adapter on the same queue
        # reuses the first one's (and its broker).
        if self.republishes and self.republish_name not in app._workflows:
            self._register_republish(publish_retry or RetryPolicy(max_attempts=5))

    @property
    def republish_name(self) -> str:
        return f"{REPUBLISH_PREFIX}{self.queue}"

    def describe(self) -> str:
        return f"RabbitMQ queue {self.queue!r} at {mask_amqp_url(self.url)}"

    def workflow_id(self, digest: str) -> str:
        return f"rabbitmq:{self.queue}:{digest}"

    # -- connecting --

    @contextlib.contextmanager
    def channel(self) -> Iterator[Any]:
        """A channel on the broker; connection failures become one clear error."""
        try:
            params = pika.URLParameters(self.url)
        except Exception as exc:
            raise DeadLetterError(f"invalid AMQP URL {mask_amqp_url(self.url)}: {exc}") from None
        try:
            connection = pika.BlockingConnection(params)
        except pika.exceptions.AMQPError as exc:
            raise DeadLetterError(
                f"cannot connect to RabbitMQ at {mask_amqp_url(self.url)}: "
                f"{type(exc).__name__} {exc}".rstrip()
            ) from None
        try:
            yield connection.channel()
        finally:
            if connection.is_open:
                with contextlib.suppress(pika.exceptions.AMQPError):
                    connection.close()

    def check(self, channel: Any) -> int:
        """The number of messages ready in the queue; one clear error if it does not exist."""
        try:
            frame = channel.queue_declare(self.queue, passive=True)
        except pika.exceptions.ChannelClosedByBroker as exc:
            raise DeadLetterError(
                f"the dead-letter queue {self.queue!r} does not exist at "
                f"{mask_amqp_url(self.url)} ({exc.reply_text})"
            ) from None
        return int(frame.method.message_count)

    # -- importing --

    def _row(self, method: Any, props: pika.BasicProperties, body: bytes) -> dict[str, Any]:
        properties = _properties(props)
        headers = props.headers or {}
        deaths = [d for d in headers.get("x-death") or [] if isinstance(d, dict)]
        latest = deaths[0] if deaths else {}
        first_queue = headers.get("x-first-death-queue")
        origin = next((d for d in deaths if d.get("queue") == first_queue), None)
        origin = origin or (deaths[-1] if deaths else {})
        routing_keys = origin.get("routing-keys") or []
        exchange = headers.get("x-first-death-exchange", origin.get("exchange", ""))
        routing_key = routing_keys[0] if routing_keys else method.routing_key
        reason = str(latest.get("reason", "dead-lettered"))
        count = latest.get("count", 1)
        digest = message_digest(properties, body)
        details: dict[str, Any] = {
            "source": "rabbitmq",
            "source_label": f"rabbitmq {self.queue}",
            "queue": self.queue,
            "broker": mask_amqp_url(self.url),
            "message_id": props.message_id,
            "exchange": exchange,
            "routing_key": routing_key,
            "x_death": to_json(deaths),
            "first_death": {
                "queue": first_queue,
                "reason": headers.get("x-first-death-reason"),
                "exchange": headers.get("x-first-death-exchange"),
            },
        }
        failed_ms = to_ms(latest.get("time")) or to_ms(props.timestamp) or now_ms()
        if self.republishes:
            kept = {k: v for k, v in properties.items() if k not in ("headers", "user_id")}
            kept.pop("expiration", None)
            extra = {k: v for k, v in headers.items() if k not in _DEATH_HEADERS}
            if extra:
                kept["headers"] = to_json(extra)
            payload: Any = {
                "exchange": exchange,
                "routing_key": routing_key,
                "body": base64.b64encode(body).decode("ascii"),
                "properties": kept,
            }
        else:
            payload, encoding = _decode_body(body)
            details["body_encoding"] = encoding
            details["properties"] = {k: v for k, v in properties.items() if k != "headers"}
        where = origin.get("queue") or method.routing_key
        return dead_letter_row(
            self.app,
            workflow_id=self.workflow_id(digest),
            name=self.workflow,
            payload=payload,
            error_type=f"rabbitmq {reason}",
            message=f"{reason} in queue {where!r}, {count} time(s)",
            failed_at_ms=failed_ms,
            details=details,
        )

    def import_messages(
        self, *, mode: Mode = "takeover", limit: int | None = None, batch: int = 100
    ) -> ImportResult:
        """Import the queue's messages as failed workflows; acknowledge them after the commit.

        Messages are taken in batches of ``batch``: the batch's workflows are
        inserted in one transaction, then the batch is acknowledged. A message
        imported before (redelivered after a crash) is acknowledged and
        creates nothing. ``mode="shadow"`` reads up to ``limit`` messages,
        reports them and gives them back to the queue (``nack`` with requeue:
        they stay, marked redelivered).
        """
        if mode not in ("shadow", "takeover"):
            raise ValueError(f"mode must be 'shadow' or 'takeover', not {mode!r}")
        if batch <= 0:
            raise ValueError("batch must be positive")
        result = ImportResult(shadow=mode == "shadow")
        storage = self.app.storage
        storage.ensure_ready()  # a database problem fails before any message is taken
        with self.channel() as channel:
            self.check(channel)
            left = limit
            last_tag = None
            while left is None or left > 0:
                size = batch if left is None else min(batch, left)
                rows, tags = [], []
                for _ in range(size):
                    method, props, body = channel.basic_get(self.queue, auto_ack=False)
                    if method is None:
                        break
                    rows.append(self._row(method, props, body))
                    tags.append(method.delivery_tag)
                if not rows:
                    break
                if left is not None:
                    left -= len(rows)
                ids = [r["workflow_id"] for r in rows]
                if result.shadow:
                    for wid in ids:
                        exists = storage.get_workflow(wid) is not None
                        (result.already if exists else result.imported).append(wid)
                    last_tag = tags[-1]
                    continue
                inserted = storage.insert_failed_workflows(rows)  # commits
                channel.basic_ack(delivery_tag=tags[-1], multiple=True)  # only then
                result.removed += len(tags)
                for wid in ids:
                    (result.imported if wid in inserted else result.already).append(wid)
            if result.shadow and last_tag is not None:
                channel.basic_nack(delivery_tag=last_tag, multiple=True, requeue=True)
        return result

    # -- republishing --

    def _register_republish(self, policy: RetryPolicy) -> None:
        app = self.app

        @app.step(name=f"rabbitmq.publish:{self.queue}", retry=policy)
        def publish(message: dict[str, Any]) -> dict[str, str]:
            return self.publish(message)

        def republish(message: dict[str, Any]) -> dict[str, str]:
            return publish(message)

        republish.__qualname__ = republish.__name__ = "republish"
        app.workflow(name=self.republish_name)(republish)

    def publish(self, message: dict[str, Any]) -> dict[str, str]:
        """Publish a stored message to its exchange and routing key, with confirms."""
        try:
            body = base64.b64decode(message["body"], validate=True)
        except (KeyError, binascii.Error) as exc:
            raise DeadLetterError(f"not a stored RabbitMQ message: {exc}") from None
        props = {k: from_json(v) for k, v in message.get("properties", {}).items()}
        headers = dict(props.pop("headers", None) or {})
        headers["x-durable-republished"] = True
        properties = pika.BasicProperties(headers=headers, **props)
        exchange, routing_key = message.get("exchange", ""), message.get("routing_key", "")
        with self.channel() as channel:
            channel.confirm_delivery()
            channel.basic_publish(
                exchange=exchange,
                routing_key=routing_key,
                body=body,
                properties=properties,
                mandatory=True,
            )
        return {
            "exchange": exchange,
            "routing_key": routing_key,
            "republished_at": datetime.now(UTC).isoformat(),
        }

"""Serializers: how workflow inputs, step outputs and messages are stored.

The default is JSON. A serializer turns a value into ``str`` and back; it must
never execute code on load (no pickle).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class Serializer(Protocol):
    """Turns values into text for the database and back."""

    def dumps(self, value: Any) -> str: ...

    def loads(self, data: str) -> Any: ...


class JSONSerializer:
    """JSON, with optional hooks for custom types.

    ``default`` turns an unknown object into something JSON can hold (as in
    :func:`json.dumps`); ``object_hook`` turns decoded dicts back (as in
    :func:`json.loads`). Tuples come back as lists.
    """

    def __init__(
        self,
        default: Callable[[Any], Any] | None = None,
        object_hook: Callable[[dict[str, Any]], Any] | None = None,
    ) -> None:
        self._default = default
        self._object_hook = object_hook
        # Built once: json.dumps/loads with options build a new encoder on every call.
        self._encode = json.JSONEncoder(
            default=default, separators=(",", ":"), allow_nan=False
        ).encode
        self._decode = json.JSONDecoder(object_hook=object_hook).decode

    def dumps(self, value: Any) -> str:
        return self._encode(value)

    def loads(self, data: str) -> Any:
        return self._decode(data)

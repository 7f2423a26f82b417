"""A process-wide value built on first use, once, under a lock (the catalog, the registry)."""
from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Lazy(Generic[T]):
    """``get()`` builds the value with ``factory`` on first call (one thread builds, the others
    wait); ``reset()`` drops it so the next ``get()`` rebuilds it (e.g. after a file changed)."""

    def __init__(self, factory: Callable[[], T]) -> None:
        self._factory = factory
        self._value: T | None = None
        self._lock = threading.Lock()

    def get(self) -> T:
        value = self._value
        if value is None:
            with self._lock:
                value = self._value
                if value is None:
                    value = self._value = self._factory()
        return value

    def reset(self) -> None:
        with self._lock:
            self._value = None

"""What is generated for a table (forms, admins, resources), kept for its current version.

Each cache holds one entry per table, rebuilt when the table's version moves
on; `forget(pk)` drops a deleted table's entries from every cache at once.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")

# One lock for all caches: building an admin builds its form and resource.
_lock = threading.RLock()
_caches: weakref.WeakSet[PerVersion] = weakref.WeakSet()


class PerVersion(Generic[T]):
    """{table pk: (version, value)}, built once per version."""

    def __init__(self) -> None:
        self.entries: dict[int, tuple[int, T]] = {}
        _caches.add(self)

    def get(self, pk: int, version: int, build: Callable[[], T]) -> T:
        entry = self.entries.get(pk)
        if entry is not None and entry[0] == version:
            return entry[1]
        with _lock:
            entry = self.entries.get(pk)
            if entry is not None and entry[0] == version:
                return entry[1]
            value = build()
            self.entries[pk] = (version, value)
            return value

    def forget(self, pk: int) -> None:
        self.entries.pop(pk, None)


def forget(pk: int) -> None:
    """Drop what every cache holds for table `pk` (it was deleted)."""
    for cache in list(_caches):
        cache.forget(pk)

"""A memo of values measured in batches: a request measures what the memo lacks, together, once."""
from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Callable, Hashable, Sequence, TypeVar

Key = TypeVar("Key", bound=Hashable)
Value = TypeVar("Value")


class BatchMemo:
    """Values by key, safe to share between threads (Streamlit sessions).

    ``values(keys, measure)`` returns one value per key; the keys it does not hold are passed to
    ``measure`` in one call (which returns their values in order) and kept, the least recently used
    dropped past ``size``.  So a request whose keys overlap an earlier one pays only for the new keys,
    measured as one batch."""

    def __init__(self, size: int = 4096) -> None:
        self._values: OrderedDict[Hashable, object] = OrderedDict()
        self._lock = threading.Lock()
        self._size = size

    def values(self, keys: Sequence[Key], measure: Callable[[list[Key]], Sequence[Value]]) -> list[Value]:
        with self._lock:
            found = {key: self._values[key] for key in keys if key in self._values}
        missing = list(dict.fromkeys(key for key in keys if key not in found))
        measured = list(measure(missing)) if missing else []
        if len(measured) != len(missing):
            raise ValueError(f"measure returned {len(measured)} values for {len(missing)} keys")
        found.update(zip(missing, measured))
        with self._lock:
            for key in dict.fromkeys(keys):  # this request's keys become the most recently used, in its order
                self._values[key] = found[key]
                self._values.move_to_end(key)
            while len(self._values) > self._size:
                self._values.popitem(last=False)
        return [found[key] for key in keys]

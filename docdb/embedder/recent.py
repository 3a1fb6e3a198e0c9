"""Embeddings by input content, kept a short while and computed once.

A DocDB collection has two named vectors made from the same page image: the full multi-vector
and the pooled one (docdb/pooling.py). Weaviate asks the embedder for each separately, so every
page arrives twice; the second request finds the first one's result here, or waits for it when
both are in flight, instead of running the model again. Queries come back too: the next page of
results, another search mode, each result page's similarity maps (service.py, `queries_embed`).
"""

import hashlib
import threading
from collections import OrderedDict
from concurrent.futures import Future

import numpy as np


def content_key(text: str) -> bytes:
    """The key of an input as sent (a base64 image, a query): both requests send the same text."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


class RecentEmbeddings:
    """The last `capacity` embeddings, as futures so that waiting shares one computation.

    `claim` returns the entry for a key and whether the caller must compute it; a caller that
    claims must settle the future (result or exception) and `forget` the entry on failure, so
    that a later request tries again. Capacity 0 keeps nothing (every claim computes).
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.hits = 0
        self._entries: OrderedDict[bytes, Future[np.ndarray]] = OrderedDict()
        self._lock = threading.Lock()

    def claim(self, key: bytes) -> tuple["Future[np.ndarray]", bool]:
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
                self.hits += 1
                return found, False
            future: Future[np.ndarray] = Future()
            if self.capacity:
                self._entries[key] = future
                while len(self._entries) > self.capacity:
                    # Whoever waits on an evicted entry still holds its future.
                    self._entries.popitem(last=False)
            return future, True

    def forget(self, key: bytes, future: "Future[np.ndarray]") -> None:
        with self._lock:
            if self._entries.get(key) is future:
                del self._entries[key]

    def __len__(self) -> int:
        return len(self._entries)

    def describe(self) -> dict[str, int]:
        """How many are held, and at most: what GET /health shows."""
        return {"held": len(self), "capacity": self.capacity}

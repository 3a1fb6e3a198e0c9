"""Seconds spent in each step of serving an input, summed since start: GET /health reports them,
and bench/gpu_embedder.py reads them before and after a run to give each step's share."""

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

# parse: the request's JSON; base64: image text to file bytes (front mode); decode: file bytes
# to pixels; preprocess: resize, tiles and tokens; serialize: the answer's JSON. The forward
# pass is the batcher's forward_seconds.
STEPS = ("parse", "base64", "decode", "preprocess", "serialize")


class Steps:
    """Thread-safe sums of seconds by step."""

    def __init__(self) -> None:
        self._seconds = dict.fromkeys(STEPS, 0.0)
        self._lock = threading.Lock()

    def add(self, step: str, seconds: float) -> None:
        with self._lock:
            self._seconds[step] += seconds

    @contextmanager
    def timed(self, step: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.add(step, time.perf_counter() - started)

    def seconds(self) -> dict[str, float]:
        with self._lock:
            return {step: round(seconds, 3) for step, seconds in self._seconds.items()}

"""The one thread that runs the model, fed by every request.

Inputs queue by kind (page image or query); the thread runs as many of one kind as a batch holds,
whichever requests they came from, so concurrent requests share forward passes. A batch of
queries is bounded in tokens as well, and when both kinds wait they take turns: pages waiting
behind queries wait for at most one forward pass, of at most one longest query's tokens. A batch of
pages takes the pages cut into as many tiles as the oldest one first (an A4 page is 13, a Letter
page 17): pages padded to another's length cost its tokens in every layer of the text model.
"""

import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from docdb.embedder.model import Embedder, Features

log = logging.getLogger("docdb.embedder")

Kind = Literal["image", "query"]


@dataclass
class _Job:
    kind: Kind
    features: Features
    sequence: int
    future: "Future[np.ndarray]" = field(default_factory=Future)


class Batcher:
    """The one thread that runs the model, on queued inputs of one kind from any requests."""

    def __init__(
        self,
        embedder: Embedder,
        *,
        batch_size: int,
        wait_s: float,
        query_batch_tokens: int,
        image_delay_s: float = 0.0,
    ) -> None:
        self.batch_size = batch_size
        # Padded tokens (queries x the longest of them) in one forward pass over queries.
        self.query_batch_tokens = query_batch_tokens
        self.forward_passes = 0
        self.largest_batch = 0
        # Wall time in forward passes: against the uptime, how busy this process kept the model.
        self.forward_seconds = 0.0
        self._embedder = embedder
        self._wait_s = wait_s
        self._image_delay_s = image_delay_s
        self._pending: dict[Kind, deque[_Job]] = {"image": deque(), "query": deque()}
        self._sequence = itertools.count()
        self._last_kind: Kind | None = None
        self._changed = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="embedder-model", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._changed:
            self._stopping = True
            self._changed.notify()
        self._thread.join()
        for queue in self._pending.values():
            for job in queue:
                job.future.set_exception(RuntimeError("the embedder is shutting down"))

    def submit(self, kind: Kind, items: Sequence[Features]) -> list["Future[np.ndarray]"]:
        with self._changed:
            jobs = [_Job(kind, features, next(self._sequence)) for features in items]
            self._pending[kind].extend(jobs)
            self._changed.notify()
        return [job.future for job in jobs]

    def _run(self) -> None:
        while (batch := self._next_batch()) is not None:
            self._forward(batch)

    def _next_batch(self) -> list[_Job] | None:
        with self._changed:
            self._changed.wait_for(lambda: self._stopping or any(self._pending.values()))
            if self._stopping:
                return None
            # When both kinds wait they take turns (the oldest first at the start), so neither
            # waits for more than one forward pass of the other.
            waiting = sorted(
                (kind for kind, queue in self._pending.items() if queue),
                key=lambda kind: (kind == self._last_kind, self._pending[kind][0].sequence),
            )
            kind = self._last_kind = waiting[0]
            queue = self._pending[kind]
            deadline = time.monotonic() + self._wait_s
            while len(queue) < self.batch_size and not self._stopping:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._changed.wait(remaining):
                    break
            if kind == "image":
                return self._images_take(queue)
            return [queue.popleft() for _ in range(self._queries_count(queue))]

    def _images_take(self, queue: deque[_Job]) -> list[_Job]:
        """Up to a batch of pages, the oldest first: those of its tile count, then the oldest of
        the others to fill the batch (a full batch with some padding beats a smaller one)."""
        tiles = _tiles(queue[0])
        # A stable sort: the pages alike in queue order, then the others in queue order.
        batch = sorted(queue, key=lambda job: _tiles(job) != tiles)[: self.batch_size]
        taken = {id(job) for job in batch}
        remaining = [job for job in queue if id(job) not in taken]
        queue.clear()
        queue.extend(remaining)
        return batch

    def _queries_count(self, queue: deque[_Job]) -> int:
        """How many of the queued queries the next batch takes: up to the batch size, as many as
        fit in the token budget once padded to the longest (at least one)."""
        count = min(len(queue), self.batch_size)
        longest = 0
        for taken, job in enumerate(itertools.islice(queue, count)):
            longest = max(longest, job.features["input_ids"].shape[1])
            if taken and (taken + 1) * longest > self.query_batch_tokens:
                return taken
        return count

    def _forward(self, batch: list[_Job]) -> None:
        started = time.perf_counter()
        try:
            vectors = self._embedder.forward([job.features for job in batch])
        except Exception as exc:
            # Every request with an input in this batch answers 500 with the reason.
            log.exception("forward pass over %d %ss failed", len(batch), batch[0].kind)
            for job in batch:
                job.future.set_exception(exc)
            return
        if batch[0].kind == "image" and self._image_delay_s:
            # The test model's stand-in for a real model's pace (DOCDB_EMBEDDER_TEST_DELAY_MS),
            # slept in this thread and timed as forward work, so that pages queue behind it as
            # they do behind a real forward pass.
            time.sleep(self._image_delay_s * len(batch))
        self.forward_passes += 1
        self.forward_seconds += time.perf_counter() - started
        self.largest_batch = max(self.largest_batch, len(batch))
        for job, job_vectors in zip(batch, vectors, strict=True):
            job.future.set_result(job_vectors)
        log.debug(
            "forward %d %ss in %.3f s", len(batch), batch[0].kind, time.perf_counter() - started
        )


def _tiles(job: _Job) -> int:
    """How many tiles a page was cut into (pixel values: 1 x tiles x channels x height x width)."""
    return int(job.features["pixel_values"].shape[1])

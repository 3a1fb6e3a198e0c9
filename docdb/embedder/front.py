"""The front (DOCDB_EMBEDDER_FRONT=true): one process that speaks HTTP and JSON and hands every
input to model processes (modelprocess.py), which decode, batch and run the model.

With several worker processes that each serve HTTP and the model (__main__.py), a worker's
threads parsing requests, decoding pages and writing JSON hold the GIL that its model thread
needs to launch kernels. Here the front does the HTTP and JSON, base64 and the recent pages and
queries; the model processes do nothing but pixels and the model. Every page goes to the model
process with the fewest inputs in flight, so each one's batches fill from all requests.

A model process that dies fails its inputs in flight with 503 and is started again; an input
that no model process answers within JOB_TIMEOUT_S fails with 503 too. Stopping leaves no
shared memory segment behind: the front sweeps its own prefix.
"""

import asyncio
import functools
import itertools
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import HTTPException

from docdb.embedder.config import EmbedderConfig
from docdb.embedder.model import ModelLoadError
from docdb.embedder.modelprocess import (
    model_process_main,
    segment_read,
    segment_unlink,
    segment_write,
)
from docdb.embedder.protocol import (
    MAX_LAYOUT_PIXELS,
    ImageLayoutRequest,
    image_bytes,
)
from docdb.embedder.recent import content_key
from docdb.embedder.service import Service, claim_settle

log = logging.getLogger("docdb.embedder")

# Where POSIX shared memory segments appear on Linux (for the sweep at stop).
SEGMENTS_DIR = Path("/dev/shm")  # noqa: S108
# How long an input may wait for a model process with room and then for its answer: a batch of
# 32 pages is seconds on a GPU, minutes for the full-size model on a CPU.
JOB_TIMEOUT_S = 600.0
# How long the front waits for a model process to load the model.
START_TIMEOUT_S = 600.0
# Inputs in flight per model process, in batches: enough to fill the next batch while one runs.
PENDING_BATCHES = 3
# Shared memory an input in flight may hold: its page file (~0.4 MB as the pipeline stores
# pages) and its vectors (0.5 MB for 1 000 tokens).
SEGMENT_BYTES_PER_INPUT = 2**20
# How often a waiting input looks again for a model process with room.
_ROOM_POLL_S = 0.005
# Wait before starting again a model process that died at once.
_RESTART_BACKOFF_S = (1.0, 5.0, 30.0)


class ModelProcess:
    """One model process seen from the front: its pipe, its inputs in flight, its restarts."""

    def __init__(self, config: EmbedderConfig, slot: int, prefix: str) -> None:
        self.config = config
        self.slot = slot
        self.prefix = prefix
        self.facts: dict[str, Any] = {}
        self.ready = False
        self.restarts = 0
        self._context = multiprocessing.get_context("spawn")
        self._process: Any = None
        self._connection: Connection | None = None
        self._pipe: Any = None
        self._jobs: dict[int, tuple[Future[Any], float]] = {}
        self._lock = threading.Lock()
        self._stopping = False

    @property
    def in_flight(self) -> int:
        return len(self._jobs)

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def start(self) -> None:
        """Start the process and wait until its model is loaded (ModelLoadError if it fails)."""
        self.launch()
        self.wait_ready()

    def launch(self) -> None:
        """Start the process, which loads the model (`wait_ready` waits for it)."""
        self._pipe, theirs = self._context.Pipe()
        self._process = self._context.Process(
            target=model_process_main,
            args=(theirs, self.config, self.prefix),
            name=f"docdb-embedder-model-{self.slot}",
            daemon=True,
        )
        self._process.start()
        theirs.close()

    def wait_ready(self) -> None:
        ours = self._pipe
        if not ours.poll(START_TIMEOUT_S):
            self._process.kill()
            raise ModelLoadError(f"model process {self.slot} did not load the model in time")
        try:
            kind, facts = ours.recv()
        except EOFError:
            self._process.join()
            raise ModelLoadError(
                f"model process {self.slot} exited with {self._process.exitcode} while loading "
                "the model (its log above says why)"
            ) from None
        if kind == "failed":
            self._process.join()
            raise ModelLoadError(facts)
        self.facts = facts
        self._connection = ours
        self.ready = True
        threading.Thread(
            target=self._read, args=(ours,), name=f"embedder-front-{self.slot}", daemon=True
        ).start()

    def submit(self, job: int, message: tuple[Any, ...]) -> "Future[Any]":
        future: Future[Any] = Future()
        with self._lock:
            if not self.ready or self._connection is None:
                raise _unavailable(f"model process {self.slot} is restarting")
            self._jobs[job] = (future, time.monotonic() + JOB_TIMEOUT_S)
            self._connection.send(message)
        return future

    def stop(self) -> None:
        self._stopping = True
        with self._lock:
            self.ready = False
            if self._connection is not None:
                # The model process stops when its pipe closes.
                self._connection.close()
        if self._process is not None:
            self._process.join(timeout=10)
            if self._process.is_alive():
                self._process.kill()
                self._process.join()
        self._fail_all("the embedder is shutting down")

    def _read(self, connection: Connection) -> None:
        """Hand answers to their waiters; when the process dies, fail its jobs and restart it."""
        while True:
            try:
                if connection.poll(1.0):
                    self._answer(connection.recv())
                self._expire()
            except (EOFError, OSError):
                break
        with self._lock:
            self.ready = False
            self._connection = None
        if self._stopping:
            return
        self._process.join(timeout=10)
        exitcode = self._process.exitcode
        log.error("model process %d stopped (exit code %s): restarting it", self.slot, exitcode)
        self._fail_all(f"the model process stopped (exit code {exitcode}); it is being restarted")
        _segments_remove(f"{self.prefix}m{self._process.pid}-")
        self._restart()

    def _restart(self) -> None:
        for attempt in itertools.count():
            if self._stopping:
                return
            try:
                self.start()
            except ModelLoadError as exc:
                delay = _RESTART_BACKOFF_S[min(attempt, len(_RESTART_BACKOFF_S) - 1)]
                log.error("model process %d could not start again (%s)", self.slot, exc)
                time.sleep(delay)
                continue
            self.restarts += 1
            return

    def _answer(self, message: tuple[Any, ...]) -> None:
        kind, job, *rest = message
        with self._lock:
            waiting = self._jobs.pop(job, None)
        if kind == "vectors":
            segment, rows = rest
            try:
                data = segment_read(segment, unlink=True)
            except OSError as exc:
                # Removed under it: this input fails alone.
                if waiting is not None:
                    waiting[0].set_exception(_unavailable(f"its vectors were lost ({exc})"))
                return
            if waiting is not None:
                vectors = np.frombuffer(data, dtype=np.float32, count=rows * self.facts["dim"])
                waiting[0].set_result(vectors.reshape(rows, self.facts["dim"]))
        elif waiting is None:
            return
        elif kind == "value":
            waiting[0].set_result(rest[0])
        else:
            status, detail = rest
            waiting[0].set_exception(HTTPException(status, detail))

    def _expire(self) -> None:
        now = time.monotonic()
        with self._lock:
            late = [job for job, (_, deadline) in self._jobs.items() if deadline < now]
            futures = [self._jobs.pop(job)[0] for job in late]
        for future in futures:
            future.set_exception(
                _unavailable(f"model process {self.slot} did not answer within {JOB_TIMEOUT_S} s")
            )

    def _fail_all(self, reason: str) -> None:
        with self._lock:
            futures = [future for future, _ in self._jobs.values()]
            self._jobs.clear()
        for future in futures:
            future.set_exception(_unavailable(reason))


class FrontService(Service):
    """Serves the model through model processes: HTTP, JSON, base64 and the recent pages here."""

    def __init__(self, config: EmbedderConfig, processes: int) -> None:
        self.prefix = f"dde{os.getpid()}-"
        self.models = [ModelProcess(config, slot, self.prefix) for slot in range(processes)]
        try:
            # They load the model side by side.
            for model in self.models:
                model.launch()
            for model in self.models:
                model.wait_ready()
        except BaseException:
            self.stop_models()
            raise
        facts = self.models[0].facts
        super().__init__(
            config,
            name=facts["name"],
            dim=facts["dim"],
            random_test_model=facts["random_test_model"],
            text_positions=facts["text_positions"],
        )
        self._jobs = itertools.count()
        self._segments = itertools.count()
        # Inputs in flight a model process takes: the queue's bound.
        self._room = PENDING_BATCHES * facts["batch_size"]
        try:
            _shared_memory_check(processes * self._room * SEGMENT_BYTES_PER_INPUT)
        except BaseException:
            self.stop_models()
            raise

    def start(self) -> None:
        """The model processes started with the service, before the app serves."""

    def stop(self) -> None:
        self.stop_models()
        super().stop()

    def stop_models(self) -> None:
        for model in self.models:
            model.stop()
        _segments_remove(self.prefix)

    async def _query_compute(self, index: int, text: str) -> np.ndarray:
        vectors: np.ndarray = await self._run(("query", index, text))
        return vectors

    async def _images_embed(self, images: Sequence[str]) -> list[np.ndarray]:
        """Each image's multi-vector; one asked for a moment ago is not computed again."""
        loop = asyncio.get_running_loop()
        keys = await loop.run_in_executor(self.pool, _content_keys, images)
        claims = [self.recent.claim(key) for key in keys]
        mine = [index for index, (_, computes) in enumerate(claims) if computes]
        try:
            files = await loop.run_in_executor(self.pool, self._files, images, mine)
            computed = await asyncio.gather(
                *(self._image_submit(index, data) for index, data in zip(mine, files, strict=True))
            )
        except BaseException as exc:
            error = exc if isinstance(exc, Exception) else RuntimeError("the request was cancelled")
            for index in mine:
                self.recent.forget(keys[index], claims[index][0])
                claims[index][0].set_exception(error)
            raise
        for index, future in zip(mine, computed, strict=True):
            future.add_done_callback(
                functools.partial(claim_settle, claims[index][0], self.recent, keys[index])
            )
        self.counters.images_computed += len(mine)
        return list(await asyncio.gather(*(asyncio.wrap_future(claim) for claim, _ in claims)))

    def _files(self, images: Sequence[str], indexes: Sequence[int]) -> list[bytes]:
        with self.steps.timed("base64"):
            return [image_bytes(images[index], index) for index in indexes]

    async def _image_submit(self, index: int, data: bytes) -> "Future[Any]":
        """Hand one page file to a model process through a shared memory segment, unlinked
        once the page is answered, whatever the answer."""
        name = f"{self.prefix}f{next(self._segments)}"
        segment_write(name, data)
        try:
            future = await self._submit(("image", name, index))
        except BaseException:
            segment_unlink(name)
            raise
        future.add_done_callback(lambda _: segment_unlink(name))
        return future

    async def _query_tokens_list(self, text: str) -> list[dict[str, Any]]:
        tokens: list[dict[str, Any]] = await self._run(("tokens", text))
        return tokens

    async def image_layout(self, body: ImageLayoutRequest) -> dict[str, Any]:
        if body.width * body.height > MAX_LAYOUT_PIXELS:
            raise HTTPException(413, f"Layouts are for pages of up to {MAX_LAYOUT_PIXELS} pixels.")
        layout: dict[str, Any] = await self._run(("layout", body.width, body.height))
        return layout

    async def health(self) -> dict[str, Any]:
        ready = [model for model in self.models if model.ready]
        stats = await asyncio.gather(
            *(self._run(("stats",), model) for model in ready), return_exceptions=True
        )
        answered = [stat for stat in stats if isinstance(stat, dict)]
        steps = self.steps.seconds()
        for stat in answered:
            for step, seconds in stat["steps"].items():
                steps[step] = round(steps[step] + seconds, 3)
        info = self.models[0].facts["info"]
        return {
            "status": "ok" if ready else "starting",
            **info,
            "batch_size": self.models[0].facts["batch_size"],
            "max_query_tokens": self.max_query_tokens,
            "test_delay_ms": self.config.test_delay_ms,
            "front": True,
            "workers": len(self.models),
            "process": os.getpid(),
            "model_processes": [
                {
                    "slot": model.slot,
                    "process": model.pid,
                    "ready": model.ready,
                    "in_flight": model.in_flight,
                    "restarts": model.restarts,
                }
                for model in self.models
            ],
            "gpu_memory_peak_gib": max(
                (stat["gpu_memory_peak_gib"] or 0 for stat in answered), default=None
            )
            if info["device"].startswith("cuda")
            else None,
            "counters": {
                **vars(self.counters),
                "forward_passes": sum(stat["forward_passes"] for stat in answered),
                "forward_seconds": round(sum(stat["forward_seconds"] for stat in answered), 3),
                "largest_batch": max((stat["largest_batch"] for stat in answered), default=0),
                "recent_hits": self.recent.hits,
                "recent_query_hits": self.recent_queries.hits,
            },
            "recent_pages": self.recent.describe(),
            "recent_queries": self.recent_queries.describe(),
            "steps": steps,
        }

    async def _run(self, message: tuple[Any, ...], model: ModelProcess | None = None) -> Any:
        """A job's answer; 503 when no model process answers in time."""
        return await asyncio.wrap_future(await self._submit(message, model))

    async def _submit(
        self, message: tuple[Any, ...], model: ModelProcess | None = None
    ) -> "Future[Any]":
        """Hand a job to `model`, else to the ready model process with the fewest inputs in
        flight once one has room (the queue is bounded); 503 after JOB_TIMEOUT_S."""
        job = next(self._jobs)
        numbered = (message[0], job, *message[1:])
        if model is not None:
            return model.submit(job, numbered)
        deadline = time.monotonic() + JOB_TIMEOUT_S
        while True:
            chosen = min(
                (model for model in self.models if model.ready),
                key=lambda model: model.in_flight,
                default=None,
            )
            if chosen is not None and chosen.in_flight < self._room:
                try:
                    return chosen.submit(job, numbered)
                except HTTPException:
                    pass  # it died a moment ago: another one, or a later look
            if time.monotonic() > deadline:
                raise _unavailable("every model process is busy or restarting")
            # Polled: the model processes' answers arrive on threads, and a few milliseconds
            # are nothing next to a forward pass.
            await asyncio.sleep(_ROOM_POLL_S)


def _shared_memory_check(needed: int) -> None:
    """Refuse to start with less free shared memory than the inputs in flight may hold: a
    segment written past a full /dev/shm kills its process (SIGBUS), not just the request."""
    if not SEGMENTS_DIR.is_dir():
        return
    stats = os.statvfs(SEGMENTS_DIR)
    free = stats.f_bavail * stats.f_frsize
    if free < needed:
        raise ModelLoadError(
            f"DOCDB_EMBEDDER_FRONT needs about {needed // 2**20} MiB of shared memory for the "
            f"inputs in flight, and {SEGMENTS_DIR} has {free // 2**20} MiB free: give it more "
            "(Docker's shm_size, the Helm chart's embedder.shmSize) or set fewer "
            "DOCDB_EMBEDDER_WORKERS or a smaller DOCDB_EMBEDDER_BATCH_SIZE."
        )


def _unavailable(reason: str) -> HTTPException:
    return HTTPException(503, f"The embedder cannot take this input now: {reason}. Try again.")


def _content_keys(texts: Sequence[str]) -> list[bytes]:
    return [content_key(text) for text in texts]


def _segments_remove(prefix: str) -> None:
    """Remove the segments named with `prefix` that are left (a model process that died held
    some; a stop may find answers nobody read)."""
    if SEGMENTS_DIR.is_dir():
        for path in SEGMENTS_DIR.glob(f"{prefix}*"):
            path.unlink(missing_ok=True)

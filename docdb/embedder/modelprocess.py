"""A model process behind the front (front.py): it decodes page files, prepares inputs, batches
them across every request it is handed and runs the model, and hands the vectors back.

It talks to the front over a pipe of small messages (tuples); page files and vectors travel in
shared memory segments (the standard library's multiprocessing.shared_memory: no package to add,
and a segment is one copy in and one out, where a pipe would copy a 1 MB page through the kernel
and pickle it on both sides). A segment is unlinked by the front once read, whoever made it.

Messages to the model process, each with the job's number: ("image", job, segment, index),
("query", job, index, text), ("tokens", job, text), ("layout", job, width, height),
("stats", job). Answers: ("vectors", job, segment, rows), ("value", job, value),
("error", job, status, detail); first of all ("ready", facts) or ("failed", reason).
"""

import contextlib
import logging
import os
import signal
import sys
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from multiprocessing.connection import Connection
from multiprocessing.shared_memory import SharedMemory
from typing import Any

import numpy as np
from fastapi import HTTPException

from docdb.embedder.config import ConfigError, EmbedderConfig
from docdb.embedder.decode import page_decode
from docdb.embedder.model import Embedder, ModelLoadError, embedder_configured
from docdb.embedder.service import (
    PREPARE_WORKERS,
    batcher_build,
    query_tokens_check,
    text_positions,
)
from docdb.embedder.steps import Steps

log = logging.getLogger("docdb.embedder")


def segment_write(name: str, data: bytes | np.ndarray) -> None:
    """A new shared memory segment `name` holding `data` (closed here, unlinked by the reader)."""
    raw = np.frombuffer(data, dtype=np.uint8) if isinstance(data, bytes) else data.view(np.uint8)
    segment = SharedMemory(name=name, create=True, size=max(1, raw.size))
    try:
        np.ndarray((raw.size,), dtype=np.uint8, buffer=segment.buf)[:] = raw.reshape(-1)
    finally:
        segment.close()


def segment_read(name: str, *, unlink: bool) -> bytes:
    """A copy of a segment's bytes."""
    segment = SharedMemory(name=name)
    try:
        return np.ndarray((segment.size,), dtype=np.uint8, buffer=segment.buf).tobytes()
    finally:
        segment.close()
        if unlink:
            segment.unlink()


def segment_unlink(name: str) -> None:
    """Remove a segment if it is still there."""
    try:
        segment = SharedMemory(name=name)
    except FileNotFoundError:
        return
    segment.close()
    segment.unlink()


def model_process_main(connection: Connection, config: EmbedderConfig, prefix: str) -> None:
    """A model process's life: load the model, say so, serve until the front goes."""
    # The front stops its model processes; Ctrl-C in a terminal reaches the whole process group.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(
        stream=sys.stdout, level=logging.INFO, format="%(asctime)s %(name)s %(message)s"
    )
    try:
        server = ModelServer(config, embedder_configured(config), connection, prefix)
    except (ConfigError, ModelLoadError) as exc:
        connection.send(("failed", str(exc)))
        return
    server.serve()


class ModelServer:
    """One model process's work: each job on a preparing thread, the model on its own."""

    def __init__(
        self, config: EmbedderConfig, embedder: Embedder, connection: Connection, prefix: str
    ) -> None:
        self.embedder = embedder
        self.max_query_tokens = min(config.max_query_tokens, text_positions(embedder))
        self.batcher = batcher_build(config, embedder, max_query_tokens=self.max_query_tokens)
        self.pool = ThreadPoolExecutor(PREPARE_WORKERS, thread_name_prefix="embedder-prepare")
        self.steps = Steps()
        # JPEGs decode on the GPU where the pixels are prepared there (nvJPEG), else with Pillow.
        on_gpu = embedder.image_device.type == "cuda"
        self.jpeg_device = embedder.image_device if on_gpu else None
        self._connection = connection
        self._send_lock = threading.Lock()
        self._prefix = f"{prefix}m{os.getpid()}-"
        self._segments = 0
        connection.send(
            (
                "ready",
                {
                    "info": embedder.info(),
                    "name": embedder.name,
                    "dim": embedder.dim,
                    "random_test_model": embedder.random_test_model,
                    "text_positions": text_positions(embedder),
                    "batch_size": self.batcher.batch_size,
                },
            )
        )

    def serve(self) -> None:
        """Take jobs until the front closes the pipe (it stopped or died)."""
        self.batcher.start()
        try:
            while True:
                try:
                    message = self._connection.recv()
                except (EOFError, OSError):
                    return
                self.pool.submit(self._job, message)
        finally:
            self.batcher.stop()
            self.pool.shutdown(cancel_futures=True)

    def _job(self, message: tuple[Any, ...]) -> None:
        kind, job, *arguments = message
        try:
            if kind == "image":
                self._image(job, *arguments)
            elif kind == "query":
                self._query(job, *arguments)
            elif kind == "tokens":
                self._tokens(job, *arguments)
            elif kind == "layout":
                self._send(("value", job, self.embedder.image_layout(*arguments)))
            elif kind == "stats":
                self._send(("value", job, self._stats()))
        except HTTPException as exc:
            self._send(("error", job, exc.status_code, exc.detail))
        except Exception as exc:
            log.exception("job %s failed", kind)
            self._send(("error", job, 500, f"The model failed to embed the inputs: {exc}"))

    def _image(self, job: int, segment: str, index: int) -> None:
        data = segment_read(segment, unlink=False)
        with self.steps.timed("decode"):
            image = page_decode(data, index, jpeg_device=self.jpeg_device)
        with self.steps.timed("preprocess"):
            features = self.embedder.image_prepare(image)
        (future,) = self.batcher.submit("image", [features])
        future.add_done_callback(lambda done: self.pool.submit(self._answer, job, done))

    def _query(self, job: int, index: int, text: str) -> None:
        features = self.embedder.query_prepare(text)
        query_tokens_check(index, features, limit=self.max_query_tokens)
        (future,) = self.batcher.submit("query", [features])
        future.add_done_callback(lambda done: self.pool.submit(self._answer, job, done))

    def _tokens(self, job: int, text: str) -> None:
        """The tokens of a query's positions, without its vectors (the front keeps those)."""
        features, tokens = self.embedder.query_tokens(text)
        query_tokens_check(0, features, limit=self.max_query_tokens)
        self._send(("value", job, tokens))

    def _answer(self, job: int, computed: "Future[np.ndarray]") -> None:
        """Hand one input's vectors back (on a preparing thread, not the model's)."""
        error = computed.exception()
        if error is not None:
            self._send(("error", job, 500, f"The model failed to embed the inputs: {error}"))
            return
        vectors = np.ascontiguousarray(computed.result(), dtype=np.float32)
        name = self._segment_name()
        segment_write(name, vectors)
        self._send(("vectors", job, name, vectors.shape[0]))

    def _stats(self) -> dict[str, Any]:
        return {
            "process": os.getpid(),
            "forward_passes": self.batcher.forward_passes,
            "forward_seconds": self.batcher.forward_seconds,
            "largest_batch": self.batcher.largest_batch,
            "gpu_memory_peak_gib": self.embedder.memory_peak_gib(),
            "steps": self.steps.seconds(),
        }

    def _segment_name(self) -> str:
        with self._send_lock:
            self._segments += 1
            return f"{self._prefix}{self._segments}"

    def _send(self, message: tuple[Any, ...]) -> None:
        # When the front is gone, the pipe's end stops `serve`.
        with self._send_lock, contextlib.suppress(OSError):
            self._connection.send(message)

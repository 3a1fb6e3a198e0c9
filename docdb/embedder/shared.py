"""Page embeddings shared by the embedder's worker processes, as files in shared memory.

With several workers (docdb/embedder/__main__.py) the two requests Weaviate sends for a page,
its full and its pooled vector, mostly reach different processes, and each process remembers
only what it computed itself (docdb/embedder/recent.py). Here a worker that is about to run the
model for a page looks for the page among the files the others wrote, or, when another worker
is computing it right now, waits for that one's file instead of computing it a second time.

A page is `KEY.f32` (its vectors as float32 bytes, written to a temporary name and renamed, so
a reader sees all of it or nothing) and, while one worker computes it, `KEY.lock` holding that
worker's process id. A lock whose process is gone counts as free. The folder keeps the newest
`capacity` pages; the parent process removes it when it stops.
"""

import asyncio
import logging
import os
import time
from pathlib import Path

import numpy as np

log = logging.getLogger("docdb.embedder")

# How often a worker looks whether another one has finished a page it waits for.
_POLL_S = 0.02
# A lock still without a process id after this long was left by a worker that died.
_EMPTY_LOCK_S = 5.0
# Pages written between two looks for old files to remove.
_PRUNE_EVERY = 32


class SharedPages:
    """The workers' common page embeddings: `get`, `reserve`, `wait`, `put`, `release`."""

    def __init__(self, folder: Path, *, capacity: int, dim: int) -> None:
        self.folder = folder
        self.capacity = capacity
        self.dim = dim
        self._written = 0

    def get(self, key: bytes) -> np.ndarray | None:
        """The page's vectors if some worker has written them."""
        try:
            data = self._path(key, ".f32").read_bytes()
        except FileNotFoundError:
            return None
        return np.frombuffer(data, dtype=np.float32).reshape(-1, self.dim)

    def reserve(self, key: bytes) -> bool:
        """Whether this worker now computes the page: no other worker is computing it."""
        lock = self._path(key, ".lock")
        for _ in range(2):
            try:
                descriptor = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
            except FileExistsError:
                if _holder_alive(lock):
                    return False
                # Its worker died while computing: take the page over.
                lock.unlink(missing_ok=True)
                continue
            with os.fdopen(descriptor, "w") as handle:
                handle.write(str(os.getpid()))
            return True
        return False

    async def wait(self, key: bytes, *, timeout: float) -> np.ndarray | None:
        """The page's vectors once the worker computing them has written them; None when it
        failed, died or took longer than `timeout` (then the caller computes the page)."""
        lock = self._path(key, ".lock")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.get(key)
            if found is not None:
                return found
            if not _holder_alive(lock):
                # Written just before the lock went, or not at all.
                return self.get(key)
            await asyncio.sleep(_POLL_S)
        return None

    def put(self, key: bytes, vectors: np.ndarray) -> None:
        """Keep a page computed here for the others, and let go of its lock."""
        temporary = self._path(key, f".{os.getpid()}.tmp")
        try:
            temporary.write_bytes(np.ascontiguousarray(vectors, dtype=np.float32).tobytes())
            os.replace(temporary, self._path(key, ".f32"))
        except OSError as exc:
            # A full shared-memory folder (Docker gives 64 MB unless told otherwise) costs the
            # others a forward pass, nothing more.
            log.warning("could not share a page embedding with the other workers: %s", exc)
            temporary.unlink(missing_ok=True)
        finally:
            self.release(key)
        self._written += 1
        if self._written % _PRUNE_EVERY == 0:
            self.prune()

    def release(self, key: bytes) -> None:
        """Let go of a page's lock without a result (its computation failed)."""
        self._path(key, ".lock").unlink(missing_ok=True)

    def prune(self) -> None:
        """Remove the oldest pages beyond `capacity`."""
        pages = []
        for path in self.folder.glob("*.f32"):
            try:
                pages.append((path.stat().st_mtime, path))
            except FileNotFoundError:  # another worker removed it
                continue
        pages.sort()
        for _, path in pages[: max(0, len(pages) - self.capacity)]:
            path.unlink(missing_ok=True)

    def _path(self, key: bytes, suffix: str) -> Path:
        return self.folder / f"{key.hex()}{suffix}"


def _holder_alive(lock: Path) -> bool:
    """Whether the process named in a lock file still runs (False when the lock is gone)."""
    try:
        text = lock.read_text()
    except FileNotFoundError:
        return False
    if not text:
        # Created a moment ago and its process id being written, or its process died then.
        try:
            return time.time() - lock.stat().st_mtime < _EMPTY_LOCK_S
        except FileNotFoundError:
            return False
    try:
        os.kill(int(text), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError):
        return True
    return True

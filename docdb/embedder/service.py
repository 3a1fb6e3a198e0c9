"""The embedder's work behind the routes: check a request, prepare its inputs, have the model
thread embed them, and answer; with the counters, the recent pages and queries, and the pages
shared between worker processes.
"""

import asyncio
import functools
import os
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
from fastapi import HTTPException

from docdb.embedder.batcher import Batcher, Kind
from docdb.embedder.config import ConfigError, EmbedderConfig
from docdb.embedder.model import Embedder, Features
from docdb.embedder.protocol import (
    KNOWN_MODEL_NAMES,
    MAX_LAYOUT_PIXELS,
    EmbedRequest,
    ImageLayoutRequest,
    QueryTokensRequest,
    embed_response_json,
    image_decode,
)
from docdb.embedder.recent import RecentEmbeddings, content_key
from docdb.embedder.shared import SharedPages
from docdb.embedder.steps import Steps
from docdb.embedder.testmodel import TINY_MODEL
from docdb.pooling import multivector_pool, pooled_model_parse

PREPARE_WORKERS = min(16, os.cpu_count() or 1)
# A query of more bytes than this many per token it may have is refused before it is tokenized:
# the ModernBERT tokenizer's tokens average ~4 bytes of English, and no query needs the tokenizer
# to read megabytes to learn that it is too long.
QUERY_BYTES_PER_TOKEN = 8
# How long a worker waits for a page another worker is computing before computing it itself.
SHARED_WAIT_S = 120.0
# Queries of more vectors than this are answered but not kept among the recent queries: a pasted
# paragraph is rarely asked twice, and one of 8 192 tokens would hold 4 MB.
RECENT_QUERY_MAX_VECTORS = 256


@dataclass
class Counters:
    """Successful work since start; tests read them to prove Weaviate called the embedder."""

    requests: int = 0
    images_embedded: int = 0
    # Images run through the model: fewer than embedded when recent pages are asked again.
    images_computed: int = 0
    queries_embedded: int = 0
    # Queries run through the model: fewer than embedded when recent queries are asked again.
    queries_computed: int = 0
    # Images another worker computed (with several workers).
    shared_hits: int = 0


class Service(ABC):
    """What every way of serving shares: the request checks, the answer, the counters, the
    recent pages and queries and the preparing threads. Subclasses embed the inputs."""

    def __init__(
        self,
        config: EmbedderConfig,
        *,
        name: str,
        dim: int,
        random_test_model: bool,
        text_positions: int,
    ) -> None:
        if config.test_delay_ms and not random_test_model:
            # Nobody slows a real deployment down by a setting left over from a test.
            raise ConfigError(
                f"DOCDB_EMBEDDER_TEST_DELAY_MS={config.test_delay_ms} is for the random test "
                f"model only, and {name} is a real model: unset it or set it to 0."
            )
        self.config = config
        self.name = name
        self.dim = dim
        self.counters = Counters()
        self.steps = Steps()
        # The setting, but never more than the model's text positions.
        self.max_query_tokens = min(config.max_query_tokens, text_positions)
        self.pool = ThreadPoolExecutor(PREPARE_WORKERS, thread_name_prefix="embedder-prepare")
        self.recent = RecentEmbeddings(config.recent_pages)
        self.recent_queries = RecentEmbeddings(config.recent_queries)
        extra = (config.model, TINY_MODEL) if random_test_model else (config.model,)
        self.model_names = tuple(dict.fromkeys((*KNOWN_MODEL_NAMES, *extra)))

    @abstractmethod
    def start(self) -> None:
        """Begin serving (the app's start-up)."""

    def stop(self) -> None:
        """Stop serving (the app's shutdown)."""
        self.pool.shutdown(cancel_futures=True)

    async def embed(self, body: EmbedRequest) -> tuple[bytes, int, Kind]:
        """JSON response bytes, the number of inputs and their kind.

        A pooled model name (docdb/pooling.py) gets page images pooled; queries never are.
        """
        self._check(body)
        kind: Kind = "query" if body.is_search_query else "image"
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        try:
            if kind == "query":
                vectors = await self.queries_embed(body.input)
            else:
                vectors = await self._images_embed(body.input)
        except HTTPException:
            raise
        except Exception as exc:
            raise HTTPException(500, f"The model failed to embed the inputs: {exc}") from exc
        pooled = pooled_model_parse(body.model or "")
        if kind == "image" and pooled is not None:
            vectors = await loop.run_in_executor(self.pool, _pool_all, vectors, pooled[1])
        metadata = {
            "model": self.name if pooled is None else body.model,
            "time_taken_inference": time.perf_counter() - started,
            "num_embeddings_inferred": len(vectors),
        }
        # A page is ~900 vectors: encoding many pages would stall the event loop.
        content = await loop.run_in_executor(self.pool, self._serialize, vectors, metadata)
        self._count(kind, len(vectors))
        return content, len(vectors), kind

    async def queries_embed(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Each query's multi-vector. A query asked a moment ago is not computed again: the next
        page of its results, the same search in another mode and the similarity maps of each of
        its pages all ask for it, and on a CPU a query costs a forward pass of the text model
        (docs/benchmarks.md). Each query is settled on its own, so a query refused in one
        request does not fail another request waiting for a different one."""
        for index, text in enumerate(texts):
            self._query_bytes_check(index, text)
        keys = [content_key(text) for text in texts]
        claims = [self.recent_queries.claim(key) for key in keys]
        mine = [index for index, (_, computes) in enumerate(claims) if computes]
        try:
            computed = await asyncio.gather(
                *(self._query_compute(index, texts[index]) for index in mine),
                return_exceptions=True,
            )
        except BaseException:  # cancelled: whoever waits hears so, and a later request retries
            for index in mine:
                self.recent_queries.forget(keys[index], claims[index][0])
                claims[index][0].set_exception(RuntimeError("the request was cancelled"))
            raise
        for index, answer in zip(mine, computed, strict=True):
            claim = claims[index][0]
            if isinstance(answer, BaseException):
                self.recent_queries.forget(keys[index], claim)
                claim.set_exception(answer)
                continue
            claim.set_result(answer)
            if len(answer) > RECENT_QUERY_MAX_VECTORS:
                self.recent_queries.forget(keys[index], claim)
        self.counters.queries_computed += len(mine)
        return list(await asyncio.gather(*(asyncio.wrap_future(claim) for claim, _ in claims)))

    @abstractmethod
    async def _query_compute(self, index: int, text: str) -> np.ndarray:
        """The multi-vector of input[`index`], a query, run through the model."""

    @abstractmethod
    async def _images_embed(self, images: Sequence[str]) -> list[np.ndarray]:
        """Each page image's multi-vector (base64 files)."""

    async def query_tokens(self, body: QueryTokensRequest) -> dict[str, Any]:
        """A query's multi-vector with the token each vector stands for."""
        self._query_bytes_check(0, body.input)
        tokens = await self._query_tokens_list(body.input)
        try:
            (vectors,) = await self.queries_embed([body.input])
        except HTTPException:
            raise
        except Exception as exc:
            raise HTTPException(500, f"The model failed to embed the query: {exc}") from exc
        self._count("query", 1)
        return {"tokens": tokens, "embeddings": vectors}

    @abstractmethod
    async def _query_tokens_list(self, text: str) -> list[dict[str, Any]]:
        """The token each position of the query's multi-vector stands for (model.query_tokens),
        after the query's token count is checked."""

    @abstractmethod
    async def image_layout(self, body: ImageLayoutRequest) -> dict[str, Any]:
        """Where a page of this size puts its image tokens."""

    @abstractmethod
    async def health(self) -> dict[str, Any]:
        """GET /health: the model, the settings and the counters."""

    def _check(self, body: EmbedRequest) -> None:
        if not body.input:
            raise HTTPException(400, "`input` is empty: send at least one image or query.")
        if len(body.input) > self.config.max_inputs:
            raise HTTPException(
                413,
                f"{len(body.input)} inputs in one request; this embedder takes at most "
                f"{self.config.max_inputs} (DOCDB_EMBEDDER_MAX_INPUTS).",
            )
        pooled = pooled_model_parse(body.model or "")
        model = pooled[0] if pooled is not None else body.model
        if model is not None and model not in self.model_names:
            raise HTTPException(
                400,
                f"Unknown model {body.model!r}; this embedder serves: "
                f"{', '.join(self.model_names)}.",
            )
        if body.dimensions is not None and body.dimensions != self.dim:
            raise HTTPException(400, f"This model only makes {self.dim}-dimensional vectors.")

    def _query_bytes_check(self, index: int, text: str) -> None:
        """Refuse a query too long to be worth tokenizing (413).

        Refused rather than cut: a query cut short ranks pages for words the person did not
        stop at, and Weaviate, which also sends queries here, could not tell them so.
        """
        limit = self.max_query_tokens * QUERY_BYTES_PER_TOKEN
        # Characters first: a character is at least a byte, and counting them costs nothing.
        if len(text) > limit or len(text.encode()) > limit:
            raise HTTPException(
                413,
                f"input[{index}] is a query of more than {limit} bytes; this embedder reads "
                f"queries of at most {self.max_query_tokens} tokens "
                "(DOCDB_EMBEDDER_MAX_QUERY_TOKENS). Shorten it.",
            )

    def _query_tokens_check(self, index: int, features: Features) -> None:
        query_tokens_check(index, features, limit=self.max_query_tokens)

    def _serialize(self, vectors: Sequence[np.ndarray], metadata: dict[str, Any]) -> bytes:
        with self.steps.timed("serialize"):
            return embed_response_json(vectors, metadata)

    def _count(self, kind: Kind, inputs: int) -> None:
        self.counters.requests += 1
        if kind == "query":
            self.counters.queries_embedded += inputs
        else:
            self.counters.images_embedded += inputs


class EmbedService(Service):
    """Serves the model loaded in this process: a model thread fed by every request."""

    def __init__(self, config: EmbedderConfig, embedder: Embedder) -> None:
        super().__init__(
            config,
            name=embedder.name,
            dim=embedder.dim,
            random_test_model=embedder.random_test_model,
            text_positions=text_positions(embedder),
        )
        self.embedder = embedder
        self.batcher = batcher_build(config, embedder, max_query_tokens=self.max_query_tokens)
        # With several workers: what the others computed (shared.py).
        self.shared = (
            SharedPages(config.shared_dir, capacity=config.recent_pages, dim=embedder.dim)
            if config.shared_dir and config.recent_pages
            else None
        )

    def start(self) -> None:
        self.batcher.start()

    def stop(self) -> None:
        self.batcher.stop()
        super().stop()

    async def _query_compute(self, index: int, text: str) -> np.ndarray:
        loop = asyncio.get_running_loop()
        features = await loop.run_in_executor(self.pool, self.embedder.query_prepare, text)
        self._query_tokens_check(index, features)
        (future,) = self.batcher.submit("query", [features])
        return await asyncio.wrap_future(future)

    async def _images_embed(self, images: Sequence[str]) -> list[np.ndarray]:
        """Each image's multi-vector. An image embedded a moment ago is not embedded again:
        Weaviate asks for every page once per named vector (page and pooled)."""
        loop = asyncio.get_running_loop()
        keys = await loop.run_in_executor(self.pool, _content_keys, images)
        claims = [self.recent.claim(key) for key in keys]
        mine = [index for index, (_, computes) in enumerate(claims) if computes]
        if self.shared is not None and mine:
            mine = await self._shared_take(
                self.shared, keys, [claims[index][0] for index in mine], mine
            )
        try:
            # Decoding and resizing are CPU work; the pool keeps them off the event loop and
            # the model thread, so they overlap the forward pass of the previous batch.
            items = await asyncio.gather(
                *(
                    loop.run_in_executor(self.pool, self._image_features, index, images[index])
                    for index in mine
                )
            )
            computed = self.batcher.submit("image", items)
        except BaseException as exc:
            # Whoever waits for these images hears why; a later request tries them again.
            error = exc if isinstance(exc, Exception) else RuntimeError("the request was cancelled")
            for index in mine:
                self.recent.forget(keys[index], claims[index][0])
                claims[index][0].set_exception(error)
                if self.shared is not None:
                    self.shared.release(keys[index])
            raise
        for index, future in zip(mine, computed, strict=True):
            future.add_done_callback(
                functools.partial(claim_settle, claims[index][0], self.recent, keys[index])
            )
            if self.shared is not None:
                future.add_done_callback(
                    functools.partial(_share, self.shared, self.pool, keys[index])
                )
        self.counters.images_computed += len(mine)
        return list(await asyncio.gather(*(asyncio.wrap_future(claim) for claim, _ in claims)))

    def _image_features(self, index: int, text: str) -> Features:
        with self.steps.timed("decode"):
            image = image_decode(text, index)
        with self.steps.timed("preprocess"):
            return self.embedder.image_prepare(image)

    async def _shared_take(
        self,
        shared: SharedPages,
        keys: Sequence[bytes],
        claims: Sequence["Future[np.ndarray]"],
        mine: list[int],
    ) -> list[int]:
        """Settle the pages another worker has computed or is computing; the indexes of those
        left for this worker to compute (each reserved for it)."""
        left, waiting = [], []
        for index, claim in zip(mine, claims, strict=True):
            found = shared.get(keys[index])
            if found is not None:
                claim.set_result(found)
                self.counters.shared_hits += 1
            elif shared.reserve(keys[index]):
                left.append(index)
            else:
                waiting.append((index, claim))
        results = await asyncio.gather(
            *(shared.wait(keys[index], timeout=SHARED_WAIT_S) for index, _ in waiting)
        )
        for (index, claim), found in zip(waiting, results, strict=True):
            if found is None:
                # The other worker failed or is stuck: compute it here after all.
                left.append(index)
            else:
                claim.set_result(found)
                self.counters.shared_hits += 1
        return sorted(left)

    async def _query_tokens_list(self, text: str) -> list[dict[str, Any]]:
        loop = asyncio.get_running_loop()
        features, tokens = await loop.run_in_executor(self.pool, self.embedder.query_tokens, text)
        self._query_tokens_check(0, features)
        return tokens

    async def image_layout(self, body: ImageLayoutRequest) -> dict[str, Any]:
        if body.width * body.height > MAX_LAYOUT_PIXELS:
            raise HTTPException(413, f"Layouts are for pages of up to {MAX_LAYOUT_PIXELS} pixels.")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self.pool, self.embedder.image_layout, body.width, body.height
        )

    async def health(self) -> dict[str, Any]:
        return {
            "status": "ok",
            **self.embedder.info(),
            "batch_size": self.batcher.batch_size,
            "max_query_tokens": self.max_query_tokens,
            "test_delay_ms": self.config.test_delay_ms,
            # With several workers each answers for itself: its process, counters and memory.
            "workers": self.config.workers or 1,
            "process": os.getpid(),
            "gpu_memory_peak_gib": self.embedder.memory_peak_gib(),
            "counters": {
                **vars(self.counters),
                "forward_passes": self.batcher.forward_passes,
                "forward_seconds": round(self.batcher.forward_seconds, 3),
                "largest_batch": self.batcher.largest_batch,
                "recent_hits": self.recent.hits,
                "recent_query_hits": self.recent_queries.hits,
            },
            "steps": self.steps.seconds(),
            "recent_pages": self.recent.describe(),
            "recent_queries": self.recent_queries.describe(),
        }


def query_tokens_check(index: int, features: Features, *, limit: int) -> None:
    """Refuse a query of more than `limit` tokens (413)."""
    tokens = features["input_ids"].shape[1]
    if tokens > limit:
        raise HTTPException(
            413,
            f"input[{index}] is a query of {tokens} tokens (with those the model adds); "
            f"this embedder reads at most {limit} (DOCDB_EMBEDDER_MAX_QUERY_TOKENS). Shorten it.",
        )


def batcher_build(config: EmbedderConfig, embedder: Embedder, *, max_query_tokens: int) -> Batcher:
    """The model thread for `embedder`, as configured."""
    return Batcher(
        embedder,
        batch_size=config.batch_size or (32 if embedder.device.type == "cuda" else 8),
        wait_s=config.batch_wait_ms / 1000,
        query_batch_tokens=max_query_tokens,
        image_delay_s=config.test_delay_ms / 1000,
    )


def text_positions(embedder: Embedder) -> int:
    """The most tokens the model's text encoder reads (ModernBERT: 8192)."""
    text_config = embedder.model.config.vlm_config.text_config
    positions: int = text_config.max_position_embeddings
    return positions


def _content_keys(texts: Sequence[str]) -> list[bytes]:
    return [content_key(text) for text in texts]


def claim_settle(
    claim: "Future[np.ndarray]",
    recent: RecentEmbeddings,
    key: bytes,
    computed: "Future[np.ndarray]",
) -> None:
    """Hand the model's answer for one image to everyone waiting for it (model thread)."""
    error = computed.exception()
    if error is None:
        claim.set_result(computed.result())
        return
    recent.forget(key, claim)
    claim.set_exception(error)


def _share(
    shared: SharedPages, pool: ThreadPoolExecutor, key: bytes, computed: "Future[np.ndarray]"
) -> None:
    """Write a page computed here for the other workers, off the model thread; a failed one
    only lets go of its lock."""
    if computed.exception() is None:
        pool.submit(shared.put, key, computed.result())
    else:
        shared.release(key)


def _pool_all(vectors: Sequence[np.ndarray], size: int) -> list[np.ndarray]:
    return [multivector_pool(page, size) for page in vectors]

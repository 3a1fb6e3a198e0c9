"""HTTP service speaking the Weaviate Embeddings protocol (`POST /v1/embeddings/embed`).

Weaviate's `multi2multivec-weaviate` module posts page images (base64) at import and query texts
at search; each input comes back as a multi-vector (a list of 128-dim unit vectors).
"""

import asyncio
import base64
import binascii
import functools
import hmac
import io
import itertools
import logging
import os
import sys
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import orjson
from fastapi import APIRouter, FastAPI, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel, Field, ValidationError
from uvicorn.config import STARTUP_FAILURE

from docdb.embedder.config import ConfigError, EmbedderConfig, config_from_env
from docdb.embedder.model import Embedder, Features, ModelLoadError, embedder_load
from docdb.embedder.recent import RecentEmbeddings, content_key
from docdb.embedder.shared import SharedPages
from docdb.embedder.testmodel import TINY_MODEL
from docdb.pooling import multivector_pool, pooled_model_parse

log = logging.getLogger("docdb.embedder")

# What Weaviate sends by default, and the checkpoint it names on the hub.
KNOWN_MODEL_NAMES = ("ModernVBERT/colmodernvbert", "ModernVBERT/colmodernvbert-merged")
# Formats a page image arrives in. Leaving out the rest keeps Pillow from, say, handing an EPS
# file to Ghostscript.
IMAGE_FORMATS = ("PNG", "JPEG", "WEBP", "TIFF", "BMP", "GIF")
PREPARE_WORKERS = min(16, os.cpu_count() or 1)

Kind = Literal["image", "query"]
# A layout is computed on a blank page of the asked size: bound what that may allocate.
MAX_LAYOUT_SIDE = 10_000
MAX_LAYOUT_PIXELS = 25_000_000
# How long a worker waits for a page another worker is computing before computing it itself.
SHARED_WAIT_S = 120.0


class EmbedRequest(BaseModel):
    input: list[str]
    is_search_query: bool = False
    model: str | None = None
    dimensions: int | None = None


class QueryTokensRequest(BaseModel):
    """DocDB's own call (not Weaviate's): a query's vectors with the token each stands for."""

    input: str = Field(min_length=1, max_length=2000)


class ImageLayoutRequest(BaseModel):
    """DocDB's own call: where a page of this size puts its image tokens."""

    width: int = Field(ge=1, le=MAX_LAYOUT_SIDE)
    height: int = Field(ge=1, le=MAX_LAYOUT_SIDE)


@dataclass
class Counters:
    """Successful work since start; tests read them to prove Weaviate called the embedder."""

    requests: int = 0
    images_embedded: int = 0
    # Images run through the model: fewer than embedded when recent pages are asked again.
    images_computed: int = 0
    queries_embedded: int = 0
    # Images another worker computed (with several workers).
    shared_hits: int = 0


@dataclass
class _Job:
    kind: Kind
    features: Features
    sequence: int
    future: "Future[np.ndarray]" = field(default_factory=Future)


class Batcher:
    """The one thread that runs the model, on queued inputs of one kind from any requests."""

    def __init__(self, embedder: Embedder, *, batch_size: int, wait_s: float) -> None:
        self.batch_size = batch_size
        self.forward_passes = 0
        self.largest_batch = 0
        # Wall time in forward passes: against the uptime, how busy this process kept the model.
        self.forward_seconds = 0.0
        self._embedder = embedder
        self._wait_s = wait_s
        self._pending: dict[Kind, deque[_Job]] = {"image": deque(), "query": deque()}
        self._sequence = itertools.count()
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
            # Serve the kind whose oldest input has waited longest, so neither starves.
            kind = min(
                (kind for kind, queue in self._pending.items() if queue),
                key=lambda kind: self._pending[kind][0].sequence,
            )
            queue = self._pending[kind]
            deadline = time.monotonic() + self._wait_s
            while len(queue) < self.batch_size and not self._stopping:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._changed.wait(remaining):
                    break
            return [queue.popleft() for _ in range(min(len(queue), self.batch_size))]

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
        self.forward_passes += 1
        self.forward_seconds += time.perf_counter() - started
        self.largest_batch = max(self.largest_batch, len(batch))
        for job, job_vectors in zip(batch, vectors, strict=True):
            job.future.set_result(job_vectors)
        log.debug(
            "forward %d %ss in %.3f s", len(batch), batch[0].kind, time.perf_counter() - started
        )


class EmbedService:
    """Checks, prepares and embeds requests; holds everything the routes share."""

    def __init__(self, config: EmbedderConfig, embedder: Embedder) -> None:
        self.config = config
        self.embedder = embedder
        self.counters = Counters()
        self.batcher = Batcher(
            embedder,
            batch_size=config.batch_size or (32 if embedder.device.type == "cuda" else 8),
            wait_s=config.batch_wait_ms / 1000,
        )
        self.pool = ThreadPoolExecutor(PREPARE_WORKERS, thread_name_prefix="embedder-prepare")
        self.recent = RecentEmbeddings(config.recent_pages)
        # With several workers: what the others computed (shared.py).
        self.shared = (
            SharedPages(config.shared_dir, capacity=config.recent_pages, dim=embedder.dim)
            if config.shared_dir and config.recent_pages
            else None
        )
        extra = (config.model, TINY_MODEL) if embedder.random_test_model else (config.model,)
        self.model_names = tuple(dict.fromkeys((*KNOWN_MODEL_NAMES, *extra)))

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
                vectors = await self._queries_embed(body.input)
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
            "model": self.embedder.name if pooled is None else body.model,
            "time_taken_inference": time.perf_counter() - started,
            "num_embeddings_inferred": len(vectors),
        }
        # A page is ~900 vectors: encoding many pages would stall the event loop.
        content = await loop.run_in_executor(self.pool, _response_json, vectors, metadata)
        self._count(kind, len(vectors))
        return content, len(vectors), kind

    async def _queries_embed(self, texts: Sequence[str]) -> list[np.ndarray]:
        loop = asyncio.get_running_loop()
        items = await asyncio.gather(
            *(
                loop.run_in_executor(self.pool, _query_features, self.embedder, index, text)
                for index, text in enumerate(texts)
            )
        )
        futures = self.batcher.submit("query", items)
        return list(await asyncio.gather(*(asyncio.wrap_future(future) for future in futures)))

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
                    loop.run_in_executor(
                        self.pool, _image_features, self.embedder, index, images[index]
                    )
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
                functools.partial(_settle, claims[index][0], self.recent, keys[index])
            )
            if self.shared is not None:
                future.add_done_callback(
                    functools.partial(_share, self.shared, self.pool, keys[index])
                )
        self.counters.images_computed += len(mine)
        return list(await asyncio.gather(*(asyncio.wrap_future(claim) for claim, _ in claims)))

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

    async def query_tokens(self, body: QueryTokensRequest) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        features, tokens = await loop.run_in_executor(
            self.pool, self.embedder.query_tokens, body.input
        )
        (future,) = self.batcher.submit("query", [features])
        try:
            vectors = await asyncio.wrap_future(future)
        except Exception as exc:
            raise HTTPException(500, f"The model failed to embed the query: {exc}") from exc
        self._count("query", 1)
        return {"tokens": tokens, "embeddings": vectors}

    async def image_layout(self, body: ImageLayoutRequest) -> dict[str, Any]:
        if body.width * body.height > MAX_LAYOUT_PIXELS:
            raise HTTPException(413, f"Layouts are for pages of up to {MAX_LAYOUT_PIXELS} pixels.")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self.pool, self.embedder.image_layout, body.width, body.height
        )

    def health(self) -> dict[str, Any]:
        return {
            "status": "ok",
            **self.embedder.info(),
            "batch_size": self.batcher.batch_size,
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
            },
            "recent_pages": {"held": len(self.recent), "capacity": self.recent.capacity},
        }

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
        if body.dimensions is not None and body.dimensions != self.embedder.dim:
            raise HTTPException(
                400, f"This model only makes {self.embedder.dim}-dimensional vectors."
            )

    def _count(self, kind: Kind, inputs: int) -> None:
        self.counters.requests += 1
        if kind == "query":
            self.counters.queries_embedded += inputs
        else:
            self.counters.images_embedded += inputs


def image_decode(text: str, index: int) -> Image.Image:
    """A base64 image (plain or a `data:image/...;base64,` URL) as RGB; 400/413 when unusable."""
    payload = text
    if text.startswith("data:"):
        header, _, payload = text.partition(",")
        if not header.endswith(";base64"):
            raise HTTPException(400, f"input[{index}] is a data URL that is not base64-encoded.")
    try:
        data = base64.b64decode("".join(payload.split()), validate=True)
    except (binascii.Error, ValueError):
        raise HTTPException(400, f"input[{index}] is not valid base64.") from None
    try:
        with Image.open(io.BytesIO(data), formats=IMAGE_FORMATS) as image:
            return image.convert("RGB")
    except Image.DecompressionBombError as exc:
        raise HTTPException(413, f"input[{index}] is too large an image: {exc}") from None
    except UnidentifiedImageError:
        raise HTTPException(
            400, f"input[{index}] is not a {', '.join(IMAGE_FORMATS)} image."
        ) from None
    except (OSError, SyntaxError, ValueError) as exc:
        # Pillow reports broken files with any of these.
        raise HTTPException(400, f"input[{index}] is a broken image: {exc}") from None


def _content_keys(texts: Sequence[str]) -> list[bytes]:
    return [content_key(text) for text in texts]


def _settle(
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


def _image_features(embedder: Embedder, index: int, text: str) -> Features:
    return embedder.image_prepare(image_decode(text, index))


def _query_features(embedder: Embedder, index: int, text: str) -> Features:
    return embedder.query_prepare(text)


def _response_json(vectors: Sequence[np.ndarray], metadata: dict[str, Any]) -> bytes:
    # orjson writes float32 arrays directly, in their shortest exact form: 20x faster than
    # json.dumps over lists and half the bytes, which decides throughput on a GPU.
    return orjson.dumps(
        {"embeddings": vectors, "metadata": metadata}, option=orjson.OPT_SERIALIZE_NUMPY
    )


def _service(request: Request) -> EmbedService:
    service: EmbedService = request.app.state.service
    return service


def _authorized(request: Request, keys: Sequence[str]) -> bool:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    # Compare against every key so the time taken does not hint at which one nearly matched.
    matches = [hmac.compare_digest(token.strip().encode(), key.encode()) for key in keys]
    return scheme.lower() == "bearer" and any(matches)


async def _require_key(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    # A middleware rather than a dependency: FastAPI parses the body before dependencies run,
    # and a client without a key should learn nothing about what it sent.
    keys = _service(request).config.api_keys
    if keys and request.url.path != "/health" and not _authorized(request, keys):
        return JSONResponse(
            {"detail": "Missing or wrong API key: send `Authorization: Bearer <key>`."},
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )
    return await call_next(request)


router = APIRouter()


@router.post("/v1/embeddings/embed")
async def embed(request: Request) -> Response:
    # Weaviate's module posts JSON without a Content-Type header, so the body is parsed here
    # whatever the header says, rather than by FastAPI (which then refuses it with a 422).
    try:
        body = EmbedRequest.model_validate_json(await request.body())
    except ValidationError as exc:
        raise RequestValidationError(
            [{**error, "loc": ("body", *error["loc"])} for error in exc.errors()]
        ) from exc
    content, count, kind = await _service(request).embed(body)
    request.state.summary = f"{count} {'queries' if kind == 'query' else 'images'}"
    return Response(content, media_type="application/json")


@router.post("/v1/docdb/query-tokens")
async def query_tokens(request: Request, body: QueryTokensRequest) -> Response:
    answer = await _service(request).query_tokens(body)
    request.state.summary = f"{len(answer['tokens'])} query tokens"
    return Response(
        orjson.dumps(answer, option=orjson.OPT_SERIALIZE_NUMPY), media_type="application/json"
    )


@router.post("/v1/docdb/image-layout")
async def image_layout(request: Request, body: ImageLayoutRequest) -> dict[str, Any]:
    return await _service(request).image_layout(body)


@router.get("/health")
async def health(request: Request) -> dict[str, Any]:
    return _service(request).health()


async def _invalid_request(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    if any(error["type"] == "json_invalid" for error in errors):
        return JSONResponse({"detail": "The request body is not valid JSON."}, status_code=400)
    # Weaviate reads `detail` as one string, not FastAPI's list of error objects.
    problems = "; ".join(
        f"{'.'.join(str(part) for part in error['loc'][1:]) or 'body'}: {error['msg']}"
        for error in errors
    )
    return JSONResponse({"detail": f"Invalid request: {problems}"}, status_code=422)


async def _internal_error(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": f"Internal error: {exc}"}, status_code=500)


async def _log_request(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    started = time.perf_counter()
    response = await call_next(request)
    summary = getattr(request.state, "summary", "-")
    log.info(
        "%s %s %d %s %.3f s",
        request.method,
        request.url.path,
        response.status_code,
        summary,
        time.perf_counter() - started,
    )
    return response


def app_from_env() -> FastAPI:
    """One worker's service, when `python -m docdb.embedder` runs several (uvicorn's factory).

    A worker that cannot load the model exits with uvicorn's start-up failure code, which stops
    the others instead of restarting it over and over.
    """
    logging_setup()
    try:
        return create_app(config_from_env(os.environ))
    except (ConfigError, ModelLoadError) as exc:
        log.error("docdb.embedder: %s", exc)
        sys.exit(STARTUP_FAILURE)


def logging_setup() -> None:
    logging.basicConfig(
        stream=sys.stdout, level=logging.INFO, format="%(asctime)s %(name)s %(message)s"
    )


def create_app(config: EmbedderConfig, embedder: Embedder | None = None) -> FastAPI:
    """The service. The model loads here, before any request, unless a loaded one is passed."""
    if embedder is None:
        embedder = embedder_load(
            config.model,
            device=config.device,
            dtype=config.dtype,
            image_backend=config.image_backend,
            cache_dir=config.cache_dir,
        )
    service = EmbedService(config, embedder)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service.batcher.start()
        yield
        service.batcher.stop()
        service.pool.shutdown(cancel_futures=True)

    app = FastAPI(title="DocDB embedder", lifespan=lifespan)
    app.state.service = service
    app.include_router(router)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(Exception, _internal_error)
    # The last middleware added runs first: log every request, rejected ones included.
    app.middleware("http")(_require_key)
    app.middleware("http")(_log_request)
    return app

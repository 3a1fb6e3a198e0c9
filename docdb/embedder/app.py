"""The embedder's HTTP app: its routes, the API-key check, request logging, and the errors the
way Weaviate reads them.
"""

import hmac
import logging
import os
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import orjson
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from uvicorn.config import STARTUP_FAILURE

from docdb.embedder.config import ConfigError, EmbedderConfig, config_from_env
from docdb.embedder.model import Embedder, ModelLoadError, embedder_configured
from docdb.embedder.protocol import ImageLayoutRequest, QueryTokensRequest, embed_request_parse
from docdb.embedder.service import EmbedService, Service

log = logging.getLogger("docdb.embedder")


def _service(request: Request) -> Service:
    service: Service = request.app.state.service
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
    service = _service(request)
    with service.steps.timed("parse"):
        body = embed_request_parse(await request.body())
    content, count, kind = await service.embed(body)
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
    return await _service(request).health()


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
        embedder = embedder_configured(config)
    return service_app(EmbedService(config, embedder))


def service_app(service: Service) -> FastAPI:
    """The HTTP app over a service: this process's model, or the front's model processes."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service.start()
        yield
        service.stop()

    app = FastAPI(title="DocDB embedder", lifespan=lifespan)
    app.state.service = service
    app.include_router(router)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(Exception, _internal_error)
    # The last middleware added runs first: log every request, rejected ones included.
    app.middleware("http")(_require_key)
    app.middleware("http")(_log_request)
    return app

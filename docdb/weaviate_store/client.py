import functools
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import ParamSpec, TypeVar
from urllib.parse import urlparse

import requests
import weaviate
from django.conf import settings
from weaviate.classes.config import ConsistencyLevel
from weaviate.classes.init import AdditionalConfig, Auth, Timeout
from weaviate.collections import Collection
from weaviate.exceptions import WeaviateBaseError

logger = logging.getLogger(__name__)


class WeaviateUnavailable(Exception):
    """Weaviate could not be reached or refused the request; usually worth a later retry."""


class WeaviateImportError(Exception):
    """Weaviate refused some page objects (e.g. the embedder failed on them)."""


_lock = threading.Lock()
_client: weaviate.WeaviateClient | None = None
_client_pid: int | None = None


def _client_build() -> weaviate.WeaviateClient:
    timeout = settings.WEAVIATE_TIMEOUT_SECONDS
    config = AdditionalConfig(timeout=Timeout(init=10, query=timeout, insert=timeout))
    auth = Auth.api_key(settings.WEAVIATE_API_KEY) if settings.WEAVIATE_API_KEY else None
    if settings.WEAVIATE_CLOUD:
        # HTTPS and gRPC on port 443 of the cluster. For a *.weaviate.cloud URL the client sends
        # the X-Weaviate-Cluster-Url header itself, and the API key pays for the hosted model.
        return weaviate.connect_to_weaviate_cloud(
            cluster_url=settings.WEAVIATE_URL,
            auth_credentials=Auth.api_key(settings.WEAVIATE_API_KEY),
            additional_config=config,
        )
    url = urlparse(settings.WEAVIATE_URL)
    secure = url.scheme == "https"
    return weaviate.connect_to_custom(
        http_host=url.hostname or "127.0.0.1",
        http_port=url.port or (443 if secure else 80),
        http_secure=secure,
        grpc_host=url.hostname or "127.0.0.1",
        grpc_port=settings.WEAVIATE_GRPC_PORT,
        grpc_secure=secure,
        # The multi2multivec-weaviate module refuses to vectorize unless the client's request
        # carries both this header and an Authorization header (the API key below).
        headers={"X-Weaviate-Cluster-Url": settings.WEAVIATE_URL},
        auth_credentials=auth,
        additional_config=config,
    )


def client_get(*, attempts: int = 1, backoff_seconds: float = 1.0) -> weaviate.WeaviateClient:
    """The process's client, built on first use; rebuilt after a fork or a lost connection.

    One attempt by default: a search answers "unavailable" at once, and the pipeline's tasks
    retry with their own backoff. Callers that can wait ask for more attempts."""
    global _client, _client_pid
    with _lock:
        if _client is not None and _client_pid == os.getpid() and _client.is_connected():
            return _client
        last_error: Exception | None = None
        for attempt in range(attempts):
            try:
                _client = _client_build()
                _client_pid = os.getpid()
                return _client
            except (WeaviateBaseError, OSError) as exc:
                last_error = exc
                logger.warning("Weaviate connect attempt %d failed: %s", attempt + 1, exc)
                if attempt + 1 < attempts:
                    time.sleep(backoff_seconds * 2**attempt)
        raise WeaviateUnavailable(
            f"Weaviate at {settings.WEAVIATE_URL} is not reachable: {last_error}"
        ) from last_error


def _connection_lost(client: weaviate.WeaviateClient | None) -> bool:
    """After a failed call: whether Weaviate answers again, so that the failure was the
    connection's (a node of a cluster lost behind the load balancer, a restarted server). Then
    the process's client is dropped, to be built afresh, and the call is worth one more try.

    The dropped client is not closed here: other threads of the process may be in the middle of
    a call with it (closing it under them broke their sockets); it closes when unused."""
    global _client
    if settings.WEAVIATE_CLOUD:
        return False
    try:
        answer = requests.get(f"{settings.WEAVIATE_URL}/v1/.well-known/ready", timeout=2)
    except requests.RequestException:
        return False
    if answer.status_code != 200:
        return False
    with _lock:
        if _client is client and client is not None:
            _client = None
    return True


P = ParamSpec("P")
R = TypeVar("R")


def weaviate_errors(failed: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """The one error boundary around Weaviate, as a decorator: whatever the client raises
    becomes WeaviateUnavailable, saying what failed, which the pipeline retries and the pages
    show as "unavailable".

    A call that failed while Weaviate still answers (a connection to a node of a cluster that
    was lost, behind the load balancer) runs once more on a new connection, so that losing a
    node fails no search and no write. Every wrapped call can run twice: reads, and writes of
    deterministic ids (an upsert or delete twice is one)."""

    def decorate(call: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(call)
        def wrapped(*args: P.args, **kwargs: P.kwargs) -> R:
            used = _client
            try:
                return call(*args, **kwargs)
            except (WeaviateBaseError, WeaviateUnavailable, WeaviateImportError) as exc:
                if not _connection_lost(used or _client):
                    raise _unavailable(failed, exc) from exc
                logger.warning("%s (%s); trying once more on a new connection", failed, exc)
            try:
                return call(*args, **kwargs)
            except WeaviateBaseError as exc:
                raise _unavailable(failed, exc) from exc

        return wrapped

    return decorate


def _unavailable(failed: str, exc: Exception) -> Exception:
    if isinstance(exc, WeaviateUnavailable | WeaviateImportError):
        return exc
    return WeaviateUnavailable(f"{failed}: {exc}")


def collection_get(*, write: bool = False) -> Collection:
    """The page collection, asking as many replicas as the settings' consistency level for
    writes or for reads (one replica per page on a single node: every level is the same)."""
    level = settings.WEAVIATE_WRITE_CONSISTENCY if write else settings.WEAVIATE_READ_CONSISTENCY
    collection = client_get().collections.use(settings.WEAVIATE_COLLECTION)
    return collection.with_consistency_level(ConsistencyLevel[level])


def client_close() -> None:
    global _client
    with _lock:
        if _client is not None and _client_pid == os.getpid():
            _client.close()
        _client = None

import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlparse

import weaviate
from django.conf import settings
from weaviate.classes.init import AdditionalConfig, Auth, Timeout
from weaviate.exceptions import WeaviateBaseError

logger = logging.getLogger(__name__)


class WeaviateUnavailable(Exception):
    """Weaviate could not be reached or refused the request; usually worth a later retry."""


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
                time.sleep(backoff_seconds * 2**attempt)
        raise WeaviateUnavailable(
            f"Weaviate at {settings.WEAVIATE_URL} is not reachable: {last_error}"
        ) from last_error


@contextmanager
def weaviate_errors(failed: str) -> Iterator[None]:
    """The one error boundary around Weaviate: whatever the client raises becomes
    WeaviateUnavailable, saying what failed, which the pipeline retries and the pages show as
    "unavailable". Usable as a decorator."""
    try:
        yield
    except WeaviateBaseError as exc:
        raise WeaviateUnavailable(f"{failed}: {exc}") from exc


def client_close() -> None:
    global _client
    with _lock:
        if _client is not None and _client_pid == os.getpid():
            _client.close()
        _client = None

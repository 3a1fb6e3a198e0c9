"""The Django side's one client for DocDB's embedder: its health, page and query embeddings, and
the image layouts and query tokens that similarity maps need.

URL, key and timeouts are read from settings on each call; the HTTP sessions (connection pools
and retry policies) are built once per process. Every failure is an EmbedderError: callers say
what it means to the people waiting.
"""

import base64
import logging
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson
import requests
from django.conf import settings
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

logger = logging.getLogger(__name__)

MultiVector = list[list[float]]

# Every page's context asks for the health (cached briefly), so it must not hold a page long.
_HEALTH_READ_SECONDS = 2

_lock = threading.Lock()
_sessions: dict[bool, requests.Session] = {}
_sessions_pid: int | None = None


class EmbedderError(Exception):
    """The embedder did not give what was asked; the message says why, for the logs."""


class EmbedderUnavailable(EmbedderError):
    """Not reachable, too slow, failing on its side (5xx) or answering nonsense: worth a later
    try."""


class EmbedderRefused(EmbedderError):
    """The embedder turned the request down (4xx); `detail` is its own reason."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"The embedder refused the request ({status}): {detail}")
        self.status = status
        self.detail = detail


def health_fetch() -> dict[str, Any]:
    """The embedder's /health answer: model, device, workers, counters."""
    answer: dict[str, Any] = _call("GET", "/health", patient=False, read=_HEALTH_READ_SECONDS)
    return answer


def embedder_urls() -> list[str]:
    """The embedders DocDB's own calls go to: EMBEDDER_URLS, else EMBEDDER_URL."""
    return [url.rstrip("/") for url in settings.EMBEDDER_URLS or [settings.EMBEDDER_URL]]


def images_embed(images: Sequence[bytes]) -> list[MultiVector]:
    """One multi-vector per page image (JPEG bytes), in requests of up to
    EMBEDDER_CLIENT_BATCH_SIZE images.

    The call is the one Weaviate's multi2multivec-weaviate module makes (the Weaviate Embeddings
    protocol), but with many page images per request instead of two, so a GPU embedder runs full
    batches. With several embedders, batch i goes to embedder i (round robin), one batch per
    embedder at a time, and a batch whose embedder does not answer goes to the others.
    """
    size = max(1, settings.EMBEDDER_CLIENT_BATCH_SIZE)
    batches = [
        [base64.b64encode(image).decode("ascii") for image in images[start : start + size]]
        for start in range(0, len(images), size)
    ]
    urls = embedder_urls()

    def batch_embed(index: int) -> list[MultiVector]:
        # As long as Weaviate gives its module calls: a CPU embeds a page in ~15 s.
        return _embed(
            batches[index], query=False, read=settings.WEAVIATE_TIMEOUT_SECONDS, first=index
        )

    if len(urls) == 1 or len(batches) <= 1:
        results = [batch_embed(index) for index in range(len(batches))]
    else:
        with ThreadPoolExecutor(max_workers=len(urls)) as pool:
            results = list(pool.map(batch_embed, range(len(batches))))
    return [vectors for batch in results for vectors in batch]


def query_embed(text: str) -> MultiVector:
    """The multi-vector of one search query."""
    (vectors,) = _embed([text], query=True, read=settings.EMBEDDER_TIMEOUT_SECONDS)
    return vectors


def image_layout_fetch(*, width: int, height: int) -> dict[str, Any]:
    """Where the model puts the image tokens of a page of this size."""
    body = {"width": width, "height": height}
    answer: dict[str, Any] = _call(
        "POST",
        "/v1/docdb/image-layout",
        body,
        patient=False,
        read=settings.EMBEDDER_TIMEOUT_SECONDS,
    )
    return answer


def query_tokens_fetch(text: str) -> dict[str, Any]:
    """The query's embedding with the text of each of its tokens."""
    answer: dict[str, Any] = _call(
        "POST",
        "/v1/docdb/query-tokens",
        {"input": text},
        patient=False,
        read=settings.EMBEDDER_TIMEOUT_SECONDS,
    )
    return answer


def _embed(inputs: list[str], *, query: bool, read: float, first: int = 0) -> list[MultiVector]:
    body: dict[str, Any] = {"input": inputs, "model": settings.WEAVIATE_MODEL}
    if query:
        body["is_search_query"] = True
    urls = embedder_urls()
    # Starting with embedder `first`, the next when one does not answer; a refusal (4xx) would
    # be the same anywhere.
    for attempt in range(len(urls)):
        base = urls[(first + attempt) % len(urls)]
        try:
            # A person waits for a query; pages are the pipeline's, which can wait for it.
            answer = _call(
                "POST", "/v1/embeddings/embed", body, patient=not query, read=read, base=base
            )
            break
        except EmbedderUnavailable:
            if attempt + 1 == len(urls):
                raise
            logger.warning("embedder %s did not answer; trying the next", base)
    embeddings = answer.get("embeddings") if isinstance(answer, dict) else None
    if not isinstance(embeddings, list) or len(embeddings) != len(inputs):
        raise EmbedderUnavailable(f"The embedder sent no list of {len(inputs)} embeddings")
    return embeddings


def _call(
    method: str,
    path: str,
    body: dict[str, Any] | None = None,
    *,
    patient: bool,
    read: float,
    base: str | None = None,
) -> Any:
    url = f"{base or embedder_urls()[0]}{path}"
    # The embedder accepts the Weaviate API key, which Weaviate forwards in server mode.
    headers = {"Authorization": f"Bearer {settings.WEAVIATE_API_KEY}"}
    if body is not None:
        headers["Content-Type"] = "application/json"
    try:
        response = _session(patient=patient).request(
            method,
            url,
            data=None if body is None else orjson.dumps(body),
            headers=headers,
            timeout=(settings.EMBEDDER_CONNECT_TIMEOUT_SECONDS, read),
        )
    except requests.RequestException as exc:
        raise EmbedderUnavailable(f"The embedder at {url} did not answer: {exc}") from exc
    if 400 <= response.status_code < 500:
        raise EmbedderRefused(response.status_code, _detail(response))
    if response.status_code != 200:
        raise EmbedderUnavailable(
            f"The embedder at {url} answered {response.status_code}: {_detail(response)}"
        )
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError as exc:
        raise EmbedderUnavailable(f"The embedder at {url} answered with no JSON") from exc


def _detail(response: requests.Response) -> str:
    # The embedder explains itself in `detail`; a proxy in front of it may send a page instead.
    try:
        detail = orjson.loads(response.content).get("detail")
    except (orjson.JSONDecodeError, AttributeError):
        detail = None
    return detail if isinstance(detail, str) else response.text[:300]


def _session(*, patient: bool) -> requests.Session:
    """The process's session for one retry policy; new after a fork, whose pooled connections
    belong to the parent."""
    global _sessions_pid
    with _lock:
        if _sessions_pid != os.getpid():
            _sessions.clear()
            _sessions_pid = os.getpid()
        if patient not in _sessions:
            adapter = HTTPAdapter(max_retries=_retry(patient=patient))
            session = requests.Session()
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            _sessions[patient] = session
        return _sessions[patient]


def _retry(*, patient: bool) -> Retry:
    if not patient:
        # A search or a map answers "unavailable" at once rather than making a person wait.
        return Retry(total=0, read=False, raise_on_status=False)
    # The pipeline rides out an embedder restarting or loading its model (connection refused,
    # 502-504 from a proxy) for a few seconds before its task's own, longer backoff. Embedding
    # is idempotent, so POSTs are sent again too. A read error is not retried: the embedder may
    # still be working on the batch, and sending it again would double its load.
    return Retry(
        total=3,
        connect=3,
        read=False,
        status=3,
        other=0,
        backoff_factor=0.5,
        status_forcelist=(502, 503, 504),
        allowed_methods=None,
        raise_on_status=False,
        # Bounded by the backoff above, whatever a proxy asks for.
        respect_retry_after_header=False,
    )

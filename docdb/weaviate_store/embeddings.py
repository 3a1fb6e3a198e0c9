"""Client-side vectors (`DOCDB_VECTORIZE=client`): DocDB calls the embedder itself.

The call is the one Weaviate's multi2multivec-weaviate module makes (the Weaviate Embeddings
protocol), but with many page images per request instead of two, so a GPU embedder runs full
batches; the vectors are then imported as self-provided multi-vectors. It lives here because
in this mode the embedder takes the place of Weaviate's vectorizer module.
"""

import base64
import logging
import time
from collections.abc import Sequence
from typing import Any

import orjson
import requests
from django.conf import settings

from docdb.weaviate_store.client import WeaviateUnavailable

logger = logging.getLogger(__name__)

MultiVector = list[list[float]]

_ATTEMPTS = 2
_BACKOFF_SECONDS = 1.0


class EmbedderUnavailable(WeaviateUnavailable):
    """The embedder did not answer or failed: for the pipeline, the same as Weaviate failing to
    vectorize in server mode (worth a later retry)."""


def images_embed(images: Sequence[bytes]) -> list[MultiVector]:
    """One multi-vector per page image (JPEG bytes), in requests of up to
    EMBEDDER_CLIENT_BATCH_SIZE images."""
    size = max(1, settings.EMBEDDER_CLIENT_BATCH_SIZE)
    vectors: list[MultiVector] = []
    for start in range(0, len(images), size):
        inputs = [base64.b64encode(image).decode("ascii") for image in images[start : start + size]]
        # As long as Weaviate gives its module calls: a CPU embeds a page in ~15 s.
        vectors += _embed(inputs, query=False, timeout=settings.WEAVIATE_TIMEOUT_SECONDS)
    return vectors


def query_embed(text: str) -> MultiVector:
    """The multi-vector of one search query."""
    (vectors,) = _embed([text], query=True, timeout=settings.EMBEDDER_TIMEOUT_SECONDS)
    return vectors


def _embed(inputs: list[str], *, query: bool, timeout: float) -> list[MultiVector]:
    body: dict[str, Any] = {"input": inputs, "model": settings.WEAVIATE_MODEL}
    if query:
        body["is_search_query"] = True
    url = f"{settings.EMBEDDER_URL.rstrip('/')}/v1/embeddings/embed"
    # The embedder accepts the Weaviate API key, which Weaviate forwards in server mode.
    headers = {
        "Authorization": f"Bearer {settings.WEAVIATE_API_KEY}",
        "Content-Type": "application/json",
    }
    data = orjson.dumps(body)
    for attempt in range(_ATTEMPTS):
        try:
            response = requests.post(url, data=data, headers=headers, timeout=timeout)
            break
        except requests.ConnectionError as exc:
            if attempt + 1 == _ATTEMPTS:
                raise EmbedderUnavailable(f"The embedder at {url} is not reachable: {exc}") from exc
            logger.warning("embedder attempt %d failed: %s", attempt + 1, exc)
            time.sleep(_BACKOFF_SECONDS * 2**attempt)
        except requests.RequestException as exc:
            raise EmbedderUnavailable(f"The embedder at {url} failed: {exc}") from exc
    if response.status_code != 200:
        raise EmbedderUnavailable(
            f"The embedder answered {response.status_code}: {response.text[:300]}"
        )
    embeddings: list[MultiVector] = orjson.loads(response.content)["embeddings"]
    if len(embeddings) != len(inputs):
        raise EmbedderUnavailable(f"The embedder sent {len(embeddings)} for {len(inputs)} inputs")
    return embeddings

"""What the Django side knows about the embedder: its /health, cached briefly."""

import logging
from typing import Any

from django.conf import settings
from django.core.cache import cache

from docdb.embedder_client import EmbedderError, health_fetch

logger = logging.getLogger(__name__)

_CACHE_KEY = "docdb:embedder-health"
_CACHE_SECONDS = 30


def embedder_health() -> dict[str, Any] | None:
    """The embedder's /health answer, or None when it does not answer (or DocDB uses the cloud)."""
    if settings.WEAVIATE_CLOUD:
        return None
    cached = cache.get(_CACHE_KEY)
    if cached is not None:
        return cached or None
    try:
        health = health_fetch()
    except EmbedderError as exc:
        logger.info("embedder health check failed: %s", exc)
        cache.set(_CACHE_KEY, {}, 5)
        return None
    cache.set(_CACHE_KEY, health, _CACHE_SECONDS)
    return health

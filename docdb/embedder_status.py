"""What the Django side knows about the embedder: its /health, cached briefly."""

import logging
from typing import Any

import requests
from django.conf import settings
from django.core.cache import cache

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
        response = requests.get(f"{settings.EMBEDDER_URL}/health", timeout=2)
        response.raise_for_status()
        health: dict[str, Any] = response.json()
    except (requests.RequestException, ValueError) as exc:
        logger.info("embedder health check failed: %s", exc)
        cache.set(_CACHE_KEY, {}, 5)
        return None
    cache.set(_CACHE_KEY, health, _CACHE_SECONDS)
    return health

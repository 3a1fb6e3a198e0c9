from typing import Any

from django.http import HttpRequest

from docdb.embedder_status import embedder_health


def embedder_notice(request: HttpRequest) -> dict[str, Any]:
    """Tell every page when search runs on the random test model, so no one trusts its ranks."""
    if not request.user.is_authenticated:
        return {}
    health = embedder_health()
    return {"embedder_random": bool(health and health.get("random_test_model"))}

"""Web: server time of the search page and the search API, bytes of a results page, thumbnails.

Django's test client calls the views in this process (no network, no browser), against the
document the vectorize benchmark ingested; server time includes Weaviate and, for semantic and
hybrid search, embedding the query.
"""

import re
import statistics
import time
from typing import Any

from django.contrib.auth import get_user_model
from django.test import Client

from bench.common import percentile
from docdb.api.models import ApiToken
from docdb.documents.models import Document, Status

QUERIES = ["who owns culture", "copyright law", "the history of film", "piracy", "free software"]
_IMAGE_SOURCE = re.compile(r'<img class="sharp" src="([^"]+)"')


def run(*, owner: str = "bench", repeats: int = 3) -> dict[str, Any]:
    user = get_user_model().objects.get(username=owner)
    browser = Client()
    browser.force_login(user)
    api = Client(headers={"Authorization": f"Bearer {ApiToken.issue(user=user, name='bench')[1]}"})
    endpoints = []
    for mode in ("vector", "hybrid", "keyword"):
        page = _timed(browser, "/search/", mode, repeats)
        page["thumbnail_bytes"] = _thumbnails(browser, page.pop("html"))
        endpoints.append({"endpoint": "search page", "mode": mode, **page})
        answer = _timed(api, "/api/search", mode, repeats)
        answer.pop("html")
        endpoints.append({"endpoint": "API", "mode": mode, **answer})
        print(f"web {mode}: page p50 {page['p50_ms']:.0f} ms, API p50 {answer['p50_ms']:.0f} ms")
    documents = Document.objects.filter(owner=user, status=Status.READY)
    files = [page for document in documents for page in document.pages.all()]
    thumbnails = [page.thumbnail_path.stat().st_size for page in files]
    images = [page.image_path.stat().st_size for page in files]
    return {
        "endpoints": endpoints,
        "pages_indexed": len(files),
        "thumbnail_kib_mean": statistics.mean(thumbnails) / 1024,
        "thumbnail_kib_max": max(thumbnails) / 1024,
        "page_image_kib_mean": statistics.mean(images) / 1024,
    }


def _timed(client: Client, path: str, mode: str, repeats: int) -> dict[str, Any]:
    client.get(path, {"q": QUERIES[0], "mode": mode})  # warm-up
    seconds = []
    html = ""
    size = 0
    for _ in range(repeats):
        for query in QUERIES:
            started = time.perf_counter()
            response = client.get(path, {"q": query, "mode": mode})
            seconds.append(time.perf_counter() - started)
            if response.status_code != 200:
                raise RuntimeError(f"{path} {mode} answered {response.status_code}")
            html = response.content.decode()
            size = len(response.content)
    return {
        "p50_ms": percentile(seconds, 0.5) * 1000,
        "p95_ms": percentile(seconds, 0.95) * 1000,
        "bytes": size,
        "html": html,
    }


def _thumbnails(client: Client, html: str) -> int:
    """Bytes of the thumbnails a results page shows (what a browser fetches next)."""
    total = 0
    for source in _IMAGE_SOURCE.findall(html):
        response = client.get(source.replace("&amp;", "&"))
        total += (
            len(b"".join(response.streaming_content))
            if response.streaming
            else len(response.content)
        )
    return total

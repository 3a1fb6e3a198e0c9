"""The embedder client against a real local HTTP server that answers as each test scripts it:
which failures are tried again, how often, and which error each one becomes."""

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.conf import settings
from django.test import override_settings

from docdb.embedder_client import (
    EmbedderRefused,
    EmbedderUnavailable,
    health_fetch,
    image_layout_fetch,
    images_embed,
    query_embed,
    query_tokens_fetch,
)
from docdb.localstack import free_port

VECTORS = [[[1.0, 0.0], [0.0, 1.0]]]


def _json(status: int, body: object) -> tuple[int, bytes]:
    return status, json.dumps(body).encode()


@dataclass
class Scripted:
    """The replies to send, in order, the last one for every request after them; and what came
    in: method, path and Authorization header."""

    replies: list[tuple[int, bytes]]
    seen: list[tuple[str, str, str]] = field(default_factory=list)

    def reply(self) -> tuple[int, bytes]:
        return self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]


@pytest.fixture
def scripted() -> Iterator[Scripted]:
    script = Scripted(replies=[])

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.do_GET()

        def do_GET(self) -> None:
            script.seen.append((self.command, self.path, self.headers.get("Authorization", "")))
            status, body = script.reply()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with override_settings(EMBEDDER_URL=f"http://127.0.0.1:{server.server_port}"):
            yield script
    finally:
        server.shutdown()
        server.server_close()


def test_page_embeddings_ride_out_a_restarting_embedder(scripted: Scripted) -> None:
    scripted.replies = [
        _json(503, {"detail": "The model is loading."}),
        (502, b"<html>Bad Gateway</html>"),
        _json(200, {"embeddings": VECTORS}),
    ]
    assert images_embed([b"\xff\xd8page"]) == VECTORS
    bearer = f"Bearer {settings.WEAVIATE_API_KEY}"
    assert scripted.seen == [("POST", "/v1/embeddings/embed", bearer)] * 3


def test_page_embeddings_give_up_after_a_few_tries(scripted: Scripted) -> None:
    scripted.replies = [_json(503, {"detail": "The model is loading."})]
    with pytest.raises(EmbedderUnavailable, match=r"answered 503: The model is loading\."):
        images_embed([b"\xff\xd8page"])
    assert len(scripted.seen) == 4


@pytest.mark.parametrize("status", [500, 503])
def test_what_a_person_waits_for_fails_at_once(scripted: Scripted, status: int) -> None:
    scripted.replies = [_json(status, {"detail": "The model failed."})]
    with pytest.raises(EmbedderUnavailable, match=r"The model failed\."):
        query_embed("revenue by region")
    with pytest.raises(EmbedderUnavailable):
        query_tokens_fetch("revenue by region")
    with pytest.raises(EmbedderUnavailable):
        health_fetch()
    assert [path for _, path, _ in scripted.seen] == [
        "/v1/embeddings/embed",
        "/v1/docdb/query-tokens",
        "/health",
    ]


def test_a_refusal_carries_the_embedders_reason_and_is_not_retried(scripted: Scripted) -> None:
    scripted.replies = [_json(413, {"detail": "Layouts are for pages of up to 1000 pixels."})]
    with pytest.raises(EmbedderRefused) as refused:
        image_layout_fetch(width=9000, height=9000)
    assert (refused.value.status, refused.value.detail) == (
        413,
        "Layouts are for pages of up to 1000 pixels.",
    )
    with pytest.raises(EmbedderRefused, match="413"):
        images_embed([b"\xff\xd8page"])
    assert len(scripted.seen) == 2


def test_an_answer_that_is_not_what_was_asked_is_unavailable(scripted: Scripted) -> None:
    scripted.replies = [(200, b"<html>a proxy's page</html>"), _json(200, {"embeddings": []})]
    with pytest.raises(EmbedderUnavailable, match="no JSON"):
        health_fetch()
    with pytest.raises(EmbedderUnavailable, match="no list of 1 embeddings"):
        query_embed("revenue")


def test_nothing_listening_is_unavailable() -> None:
    with override_settings(EMBEDDER_URL=f"http://127.0.0.1:{free_port()}"):
        with pytest.raises(EmbedderUnavailable, match="did not answer"):
            health_fetch()
        with pytest.raises(EmbedderUnavailable, match="did not answer"):
            query_embed("revenue")

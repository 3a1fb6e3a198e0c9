"""Query limits: the embedder refuses a query longer than the model reads (413, saying how long
it is and what the limit is) instead of embedding it whole, refuses a huge one before tokenizing
it, and never lets queries hold page images back for more than one bounded forward pass. DocDB's
search page and API explain the refusal instead of failing.

The limit is DOCDB_EMBEDDER_MAX_QUERY_TOKENS (8192, ColModernVBERT's text positions); here a
real embedder process runs with a small one, since the tiny model takes seconds over 8192 tokens
on two cores.
"""

import io
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest
import requests
from django.conf import settings
from django.core.management import call_command
from django.test import Client, override_settings
from embedder_helpers import EmbedderProcess, coroutine_run, embedder_start, page_image

from docdb.embedder.batcher import Batcher
from docdb.embedder.config import EmbedderConfig
from docdb.embedder.model import Embedder, Features, embedder_load
from docdb.embedder.service import QUERY_BYTES_PER_TOKEN, EmbedService
from tests.conftest import LoggedIn, Stack
from tests.helpers import user_make

pytestmark = [pytest.mark.sqlite_pass, pytest.mark.timeout(300)]

LIMIT = 64
LONG_QUERY = "bamboo fibres " * 30


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbedderProcess]:
    directory = tmp_path_factory.mktemp("limited-embedder")
    process = embedder_start(
        cache_dir=directory / "models",
        log_path=directory / "embedder.log",
        # The key DocDB sends, so that its search can be pointed here.
        api_key=settings.WEAVIATE_API_KEY,
        env={"DOCDB_EMBEDDER_MAX_QUERY_TOKENS": str(LIMIT)},
    )
    yield process
    process.stop()


@pytest.fixture(scope="module")
def tiny() -> Embedder:
    return embedder_load("tiny", device="cpu", cache_dir=Path(tempfile.mkdtemp()) / "models")


def _query(process: EmbedderProcess, *texts: str) -> Any:
    return process.post({"input": list(texts), "is_search_query": True})


def test_a_query_over_the_token_limit_is_refused_with_its_length(
    limited: EmbedderProcess,
) -> None:
    before = limited.health()["counters"]
    assert limited.health()["max_query_tokens"] == LIMIT
    assert _query(limited, "bamboo fibres").status_code == 200

    response = _query(limited, "bamboo fibres", LONG_QUERY)
    assert response.status_code == 413
    detail = response.json()["detail"]
    assert detail.startswith("input[1] is a query of ")
    assert f"tokens (with those the model adds); this embedder reads at most {LIMIT}" in detail
    assert "DOCDB_EMBEDDER_MAX_QUERY_TOKENS" in detail
    # The refused query reached no model (the other one was answered from the recent queries).
    after = limited.health()["counters"]
    assert after["queries_embedded"] - before["queries_embedded"] == 1
    assert after["forward_passes"] - before["forward_passes"] == 1


def test_a_huge_query_is_refused_before_it_is_tokenized(limited: EmbedderProcess) -> None:
    byte_limit = LIMIT * QUERY_BYTES_PER_TOKEN
    # 10 MB, and a text of few characters but many bytes: both refused by their bytes (the
    # token count, which only the tokenizer knows, is not in the answer).
    for text in ("bamboo " * 1_500_000, "é" * (byte_limit // 2 + 1)):
        response = _query(limited, text)
        assert response.status_code == 413, response.text
        assert response.json()["detail"] == (
            f"input[0] is a query of more than {byte_limit} bytes; this embedder reads queries "
            f"of at most {LIMIT} tokens (DOCDB_EMBEDDER_MAX_QUERY_TOKENS). Shorten it."
        )


def test_similarity_maps_ask_for_query_tokens_within_the_same_limit(
    limited: EmbedderProcess,
) -> None:
    def query_tokens(text: str) -> requests.Response:
        return requests.post(
            limited.url + "/v1/docdb/query-tokens",
            json={"input": text},
            headers={"Authorization": f"Bearer {limited.api_key}"},
            timeout=60,
        )

    response = query_tokens(LONG_QUERY)
    assert response.status_code == 413
    assert "tokens (with those the model adds)" in response.json()["detail"]
    assert query_tokens("bamboo").status_code == 200


def test_the_limit_is_never_above_what_the_model_reads(tiny: Embedder) -> None:
    assert EmbedderConfig().max_query_tokens == 8192
    service = EmbedService(EmbedderConfig(max_query_tokens=1_000_000), tiny)
    try:
        positions = tiny.model.config.vlm_config.text_config.max_position_embeddings
        assert service.max_query_tokens == positions == 8192
        assert coroutine_run(service.health())["max_query_tokens"] == 8192
        assert service.batcher.query_batch_tokens == 8192
    finally:
        service.pool.shutdown()


class _Recording:
    """The tiny model, with a note of every forward pass: its kind, rows and padded length."""

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder
        self.passes: list[tuple[str, int, int]] = []

    def forward(self, items: Sequence[Features]) -> list[np.ndarray]:
        kind = "image" if "pixel_values" in items[0] else "query"
        longest = max(item["input_ids"].shape[1] for item in items)
        self.passes.append((kind, len(items), longest))
        return self.embedder.forward(items)


def _run(batcher: Batcher, jobs: list[tuple[str, list[Features]]]) -> None:
    """Queue every job before the model thread starts, then wait for all of them."""
    futures = [future for kind, items in jobs for future in batcher.submit(kind, items)]  # type: ignore[arg-type]
    batcher.start()
    try:
        for future in futures:
            assert future.result(timeout=120).shape[1] == 128
    finally:
        batcher.stop()


def test_long_queries_hold_pages_back_for_one_forward_pass_at_most(tiny: Embedder) -> None:
    recording = _Recording(tiny)
    batcher = Batcher(cast(Embedder, recording), batch_size=8, wait_s=0, query_batch_tokens=LIMIT)
    long = tiny.query_prepare("bamboo fibres " * 3)
    length = long["input_ids"].shape[1]
    assert length <= LIMIT < 2 * length
    pages = [tiny.image_prepare(page_image(f"page {number}")) for number in range(3)]
    # Four long queries were asked for before the pages: each runs alone (two would pass the
    # token budget), and the pages go right after the first.
    _run(batcher, [("query", [long] * 4), ("image", pages)])
    assert [kind for kind, _, _ in recording.passes] == [
        "query",
        "image",
        "query",
        "query",
        "query",
    ]
    assert recording.passes[1][1] == 3
    for kind, rows, longest in recording.passes:
        assert kind == "image" or rows * longest <= LIMIT


def test_short_queries_still_share_a_forward_pass(tiny: Embedder) -> None:
    recording = _Recording(tiny)
    short = [tiny.query_prepare(word) for word in ("bamboo", "steel", "fibre", "weight")]
    # The four fit together when the cap holds four of the longest (its prompt and its 10
    # augmentation tokens included).
    longest = max(int(features["input_ids"].shape[-1]) for features in short)
    batcher = Batcher(
        cast(Embedder, recording), batch_size=8, wait_s=0, query_batch_tokens=4 * longest
    )
    _run(batcher, [("query", short)])
    assert [(kind, rows) for kind, rows, _ in recording.passes] == [("query", 4)]


def test_pages_of_one_tile_count_share_a_forward_pass(tiny: Embedder) -> None:
    """A4 pages (13 tiles) and Letter pages (17) queued alternately go in two passes of one kind
    each, the oldest page's kind first; a third pass is never needed to fill a batch."""
    a4 = tiny.image_prepare(page_image("an A4 page", size=(1448, 2048)))
    letter = tiny.image_prepare(page_image("a Letter page", size=(1583, 2048)))
    assert (a4["pixel_values"].shape[1], letter["pixel_values"].shape[1]) == (13, 17)
    tiles: list[list[int]] = []

    class Tiles(_Recording):
        def forward(self, items: Sequence[Features]) -> list[np.ndarray]:
            tiles.append([int(item["pixel_values"].shape[1]) for item in items])
            return super().forward(items)

    batcher = Batcher(cast(Embedder, Tiles(tiny)), batch_size=3, wait_s=0, query_batch_tokens=LIMIT)
    _run(batcher, [("image", [a4, letter, a4, letter, a4, letter])])
    assert tiles == [[13, 13, 13], [17, 17, 17]]
    # Fewer alike than a batch holds: the oldest of the others fill it.
    tiles.clear()
    batcher = Batcher(cast(Embedder, Tiles(tiny)), batch_size=3, wait_s=0, query_batch_tokens=LIMIT)
    _run(batcher, [("image", [letter, a4, a4, a4])])
    assert tiles == [[17, 13, 13], [13]]


def _api_token(username: str) -> str:
    out = io.StringIO()
    call_command("create_api_token", username, stdout=out)
    return out.getvalue().strip()


def test_search_page_and_api_explain_a_refused_query(
    live: Stack, limited: EmbedderProcess, logged_in: LoggedIn
) -> None:
    user = user_make()
    client = logged_in(user)
    api = Client(headers={"Authorization": f"Bearer {_api_token(user.username)}"})
    reason = f"this embedder reads at most {LIMIT}"
    with override_settings(EMBEDDER_URL=limited.url):
        for mode in ("vector", "hybrid"):
            page = client.get("/search/", {"q": LONG_QUERY, "mode": mode})
            assert page.status_code == 200
            text = page.content.decode()
            assert "This query cannot be searched." in text and reason in text
            assert "Search is unavailable" not in text
            # "More results" hears it as a bad request, and opens the full page that says why.
            more = client.get("/search/", {"q": LONG_QUERY, "mode": mode, "partial": "1"})
            assert more.status_code == 400

            answer = api.get("/api/search", {"q": LONG_QUERY, "mode": mode})
            assert answer.status_code == 400
            assert reason in answer.json()["detail"]
        # Keyword search needs no embedding, and a short query is embedded as always.
        assert api.get("/api/search", {"q": LONG_QUERY, "mode": "keyword"}).status_code == 200
        assert api.get("/api/search", {"q": "bamboo"}).status_code == 200

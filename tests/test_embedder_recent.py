"""The embedder's pooled model and recent pages: Weaviate asks for every page twice (page and
pooled vectors), and the model runs once.

In-process app with the tiny model (the subprocess service is covered in test_embedder.py). The
stand-ins here subclass the real model only to hold or fail a forward pass on cue, which a real
model cannot be made to do.
"""

import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from embedder_helpers import image_base64, page_image
from fastapi.testclient import TestClient

from docdb.embedder.app import create_app
from docdb.embedder.config import EmbedderConfig
from docdb.embedder.model import Embedder, Features, embedder_load
from docdb.embedder.recent import RecentEmbeddings, content_key
from docdb.pooling import multivector_pool, pooled_model_name

MODEL = "ModernVBERT/colmodernvbert"
POOLED = pooled_model_name(MODEL, 16)
EMBED = "/v1/embeddings/embed"
QUERY = "how strong are bamboo fibres compared with steel per unit of weight in tension tests"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Embedder:
    return embedder_load("tiny", device="cpu", cache_dir=tmp_path_factory.mktemp("models"))


class CountingEmbedder(Embedder):
    """The tiny model, counting forward passes; `gate` holds each one until set; `failures`
    makes that many passes raise first."""

    def __init__(self, base: Embedder, *, failures: int = 0) -> None:
        super().__init__(
            model=base.model, processor=base.processor, name="tiny", random_test_model=True
        )
        self.images_forwarded = 0
        self.entered = threading.Event()
        self.gate = threading.Event()
        self.gate.set()
        self.failures = failures

    def forward(self, items: Sequence[Features]) -> list[np.ndarray]:
        self.entered.set()
        self.gate.wait(30)
        if self.failures:
            self.failures -= 1
            raise RuntimeError("CUDA out of memory")
        self.images_forwarded += len(items)
        return super().forward(items)


def _page(text: str) -> str:
    return image_base64(page_image(text))


def _embed(client: TestClient, inputs: list[str], model: str) -> tuple[int, dict]:
    response = client.post(EMBED, json={"input": inputs, "model": model})
    return response.status_code, response.json()


def test_the_pooled_model_pools_the_page_embedded_a_moment_ago(tiny: Embedder) -> None:
    embedder = CountingEmbedder(tiny)
    page = _page("Quarterly revenue by region")
    with TestClient(create_app(EmbedderConfig(model="tiny"), embedder)) as client:
        status, full = _embed(client, [page], MODEL)
        assert status == 200
        status, pooled = _embed(client, [page], POOLED)
        assert status == 200
        health = client.get("/health").json()
    vectors = np.asarray(full["embeddings"][0], dtype=np.float32)
    pooled_vectors = np.asarray(pooled["embeddings"][0], dtype=np.float32)
    assert pooled_vectors.shape == (16, 128)
    np.testing.assert_allclose(pooled_vectors, multivector_pool(vectors, 16), atol=1e-6)
    assert pooled["metadata"]["model"] == POOLED
    assert embedder.images_forwarded == 1
    assert health["counters"]["images_embedded"] == 2
    assert health["counters"]["images_computed"] == 1
    assert health["counters"]["recent_hits"] == 1
    assert health["recent_pages"] == {"held": 1, "capacity": 256}


def test_requests_in_flight_for_the_same_page_share_one_forward_pass(tiny: Embedder) -> None:
    embedder = CountingEmbedder(tiny)
    embedder.gate.clear()
    page = _page("Tensile strength of bamboo")
    with (
        TestClient(create_app(EmbedderConfig(model="tiny"), embedder)) as client,
        ThreadPoolExecutor(2) as threads,
    ):
        first = threads.submit(_embed, client, [page], MODEL)
        assert embedder.entered.wait(30)
        second = threads.submit(_embed, client, [page], POOLED)
        time.sleep(0.3)  # the second request is waiting on the first one's forward pass
        assert not second.done()
        embedder.gate.set()
        assert first.result(30)[0] == 200
        assert second.result(30)[0] == 200
    assert embedder.images_forwarded == 1


def test_a_failed_forward_pass_is_not_remembered(tiny: Embedder) -> None:
    embedder = CountingEmbedder(tiny, failures=1)
    page = _page("Appendix tables")
    with TestClient(create_app(EmbedderConfig(model="tiny"), embedder)) as client:
        status, body = _embed(client, [page], MODEL)
        assert status == 500
        assert "CUDA out of memory" in body["detail"]
        # Weaviate's retry (or the pooled request) computes it again, and succeeds.
        assert _embed(client, [page], POOLED)[0] == 200
    assert embedder.images_forwarded == 1


def test_a_broken_image_fails_every_time_it_is_sent(tiny: Embedder) -> None:
    with TestClient(create_app(EmbedderConfig(model="tiny"), tiny)) as client:
        for model in (MODEL, POOLED, MODEL):
            status, body = _embed(client, ["bm90IGFuIGltYWdl"], model)
            assert status == 400
            assert "input[0] is not a" in body["detail"]


def test_queries_are_never_pooled(tiny: Embedder) -> None:
    with TestClient(create_app(EmbedderConfig(model="tiny"), tiny)) as client:
        answers = [
            client.post(
                EMBED, json={"input": [QUERY], "model": model, "is_search_query": True}
            ).json()["embeddings"][0]
            for model in (MODEL, POOLED)
        ]
    assert answers[0] == answers[1]
    assert len(answers[0]) > 16


def test_a_pooled_name_of_an_unknown_model_is_refused(tiny: Embedder) -> None:
    with TestClient(create_app(EmbedderConfig(model="tiny"), tiny)) as client:
        status, body = _embed(client, [_page("x")], pooled_model_name("other/model", 8))
    assert status == 400
    assert "Unknown model" in body["detail"]


def test_without_recent_pages_every_request_runs_the_model(tiny: Embedder) -> None:
    embedder = CountingEmbedder(tiny)
    page = _page("No memory")
    config = EmbedderConfig(model="tiny", recent_pages=0)
    with TestClient(create_app(config, embedder)) as client:
        assert _embed(client, [page], MODEL)[0] == 200
        assert _embed(client, [page], POOLED)[0] == 200
    assert embedder.images_forwarded == 2


def test_recent_pages_keep_the_newest_within_capacity(tmp_path: Path) -> None:
    recent = RecentEmbeddings(2)
    keys = [content_key(text) for text in ("a", "b", "c")]
    for key in keys:
        future, computes = recent.claim(key)
        assert computes
        future.set_result(np.zeros((1, 128), dtype=np.float32))
    assert len(recent) == 2
    assert recent.claim(keys[0])[1] is True  # evicted: computed again
    assert recent.claim(keys[2])[1] is False
    assert recent.hits == 1

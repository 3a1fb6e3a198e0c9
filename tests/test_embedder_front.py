"""The embedder's front mode (DOCDB_EMBEDDER_FRONT): one HTTP process, model processes behind it
fed through shared memory. The real `python -m docdb.embedder` with the tiny random model."""

import io
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import requests
import torch
from embedder_helpers import (
    EmbedderProcess,
    embedder_start,
    image_base64,
    page_image,
    tiny_as_served,
)
from PIL import Image

from docdb.embedder.decode import page_decode
from docdb.embedder.front import SEGMENTS_DIR
from docdb.embedder.model import Embedder, ModelLoadError, embedder_load, forward_compile
from docdb.embedder.protocol import image_decode

pytestmark = pytest.mark.sqlite_pass

# Each page the model computes costs this much more: long enough to catch a page in flight.
DELAY_MS = 400


@pytest.fixture(scope="module")
def front(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbedderProcess]:
    directory = tmp_path_factory.mktemp("front")
    process = embedder_start(
        cache_dir=directory / "models",
        log_path=directory / "front.log",
        env={
            "DOCDB_EMBEDDER_FRONT": "true",
            "DOCDB_EMBEDDER_WORKERS": "2",
            # Long enough for concurrent requests to meet in one batch on a loaded machine: the
            # front hands them over one by one, and 150 ms was once too short in a full run.
            "DOCDB_EMBEDDER_BATCH_WAIT_MS": "400",
            "DOCDB_EMBEDDER_TEST_DELAY_MS": str(DELAY_MS),
        },
    )
    yield process
    process.stop()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Embedder:
    return tiny_as_served(tmp_path_factory.mktemp("models"))


def test_the_front_serves_what_the_model_in_process_makes(
    front: EmbedderProcess, tiny: Embedder
) -> None:
    page = page_image("Invoice 2024-17: total due 1,250.00 EUR")
    jpeg = image_base64(page, "JPEG")
    (from_front,) = front.embed([jpeg])
    (in_process,) = tiny.embed_images([image_decode(jpeg, 0)])
    np.testing.assert_array_equal(from_front, in_process)
    queries = ["total due", "a much longer query about the invoice's total and its date"]
    for got, expected in zip(
        front.embed(queries, query=True), tiny.embed_queries(queries), strict=True
    ):
        np.testing.assert_array_equal(got, expected)
    health = front.health()
    assert health["front"] is True
    assert [model["ready"] for model in health["model_processes"]] == [True, True]
    assert health["steps"]["decode"] > 0 and health["steps"]["serialize"] > 0


def test_the_front_answers_a_query_asked_again_without_the_model_processes(
    front: EmbedderProcess,
) -> None:
    text = "the harbour works' invoice total"
    before = front.health()["counters"]
    (first,) = front.embed([text], query=True)
    response = front.post({"input": [text], "is_search_query": True})
    tokens = requests.post(
        front.url + "/v1/docdb/query-tokens",
        json={"input": text},
        headers={"Authorization": f"Bearer {front.api_key}"},
        timeout=60,
    )
    after = front.health()["counters"]
    assert response.status_code == tokens.status_code == 200, (response.text, tokens.text)
    np.testing.assert_array_equal(
        np.asarray(response.json()["embeddings"][0], dtype=np.float32), first
    )
    np.testing.assert_allclose(np.asarray(tokens.json()["embeddings"]), first, atol=1e-6)
    assert len(tokens.json()["tokens"]) == first.shape[0]
    assert after["queries_computed"] - before["queries_computed"] == 1
    assert after["forward_passes"] - before["forward_passes"] == 1


def test_concurrent_requests_share_forward_passes_and_pages(front: EmbedderProcess) -> None:
    before = front.health()["counters"]
    # Four pages: two for each model process, which has the fewest in flight.
    pages = [image_base64(page_image(f"page {number}")) for number in range(4)]
    # Each page twice, as Weaviate asks for it: its full and its pooled vectors.
    requests = [([page], model) for page in pages for model in (None, "tiny+pooled-16")]
    with ThreadPoolExecutor(len(requests)) as pool:
        answers = list(
            pool.map(
                lambda r: front.post({"input": r[0], "model": r[1]} if r[1] else {"input": r[0]}),
                requests,
            )
        )
    assert [answer.status_code for answer in answers] == [200] * len(requests)
    after = front.health()["counters"]
    assert after["images_computed"] - before["images_computed"] == 4
    assert after["largest_batch"] >= 2
    assert after["forward_passes"] - before["forward_passes"] < 4
    # Every page and answer segment was unlinked once read.
    assert not list(SEGMENTS_DIR.glob(f"dde{front.health()['process']}-*"))


def test_a_killed_model_process_fails_its_pages_with_503_and_comes_back(
    front: EmbedderProcess,
) -> None:
    page = image_base64(page_image("a page in flight when its model process dies"))
    answers = []
    request = threading.Thread(target=lambda: answers.append(front.post({"input": [page]})))
    request.start()
    deadline = time.monotonic() + 30
    while not (busy := [m for m in front.health()["model_processes"] if m["in_flight"]]):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    os.kill(busy[0]["process"], 9)
    request.join(timeout=30)
    assert answers[0].status_code == 503
    assert "model process stopped" in answers[0].json()["detail"]
    deadline = time.monotonic() + 120
    while not front.health()["model_processes"][busy[0]["slot"]]["ready"]:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert front.health()["model_processes"][busy[0]["slot"]]["restarts"] == 1
    assert front.embed([page])[0].shape[1] == 128


def test_stopping_the_front_stops_its_model_processes_and_leaves_no_shared_memory(
    front: EmbedderProcess,
) -> None:
    # The module's last test of the service: it stops it (the fixture's stop then does nothing).
    health = front.health()
    front.stop()
    assert front.process.returncode in (0, -15)
    assert not list(SEGMENTS_DIR.glob(f"dde{health['process']}-*"))
    for model in health["model_processes"]:
        with pytest.raises(ProcessLookupError):
            os.kill(model["process"], 0)


def test_torchvision_decodes_jpegs_to_the_pixels_and_vectors_pillow_does(
    tmp_path: Path,
) -> None:
    embedder = embedder_load(
        "tiny", device="cpu", image_backend="torchvision", cache_dir=tmp_path / "models"
    )
    buffer = io.BytesIO()
    page_image("A scanned page", size=(1448, 2048)).save(buffer, "JPEG", quality=85)
    decoded = page_decode(buffer.getvalue(), 0, jpeg_device=torch.device("cpu"))
    with_pillow = page_decode(buffer.getvalue(), 0, jpeg_device=None)
    assert isinstance(decoded, torch.Tensor) and isinstance(with_pillow, Image.Image)
    pixels = torch.from_numpy(np.array(with_pillow)).permute(2, 0, 1)
    assert torch.equal(decoded, pixels)
    (from_tensor,) = embedder.forward([embedder.image_prepare(decoded)])
    (from_pillow,) = embedder.forward([embedder.image_prepare(with_pillow)])
    np.testing.assert_allclose(from_tensor, from_pillow, atol=1e-6)
    # Anything but a JPEG goes to Pillow whatever the device.
    png = io.BytesIO()
    with_pillow.save(png, "PNG")
    assert isinstance(page_decode(png.getvalue(), 0, jpeg_device=torch.device("cpu")), Image.Image)


def test_compiling_applies_on_cuda_only(tiny: Embedder) -> None:
    forward_compile(tiny, "reduce-overhead")
    assert tiny.compiled is None and tiny.info()["compiled"] is None
    with pytest.raises(ModelLoadError, match="DOCDB_EMBEDDER_COMPILE"):
        forward_compile(tiny, "fast")

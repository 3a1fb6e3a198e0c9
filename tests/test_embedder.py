"""The embedder service: the real `python -m docdb.embedder` process with the tiny random model."""

import asyncio
import errno
import hashlib
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import requests
import torch
from embedder_helpers import (
    REPO_ROOT,
    EmbedderProcess,
    coroutine_run,
    decompression_bomb_base64,
    embedder_start,
    free_port,
    image_base64,
    maxsim,
    offline_env,
    page_image,
    tiny_as_served,
)
from fastapi.testclient import TestClient
from PIL import Image
from transformers.image_utils import PILImageResampling

from docdb.embedder.__main__ import gpu_workers, main, workers_resolve
from docdb.embedder.app import create_app
from docdb.embedder.config import ConfigError, EmbedderConfig, config_from_env
from docdb.embedder.model import (
    Embedder,
    Features,
    ModelLoadError,
    embedder_load,
    features_collate,
    image_backend_resolve,
    torchvision_import_error,
)
from docdb.embedder.shared import SharedPages
from docdb.embedder.testmodel import tiny_model_build, tiny_model_ensure

API_KEY = "test-embedder-key"
OTHER_KEY = "second-key"
TORCHVISION_ERROR = torchvision_import_error()
needs_torchvision = pytest.mark.skipif(
    TORCHVISION_ERROR is not None,
    reason=f"torchvision cannot be imported ({TORCHVISION_ERROR}); `pip install -e '.[dev]'`",
)
# Stretched to 2048 px on their longest edge and cut into 512-px tiles: 4 x 3 tiles and the
# global one (A4 portrait), 3 x 4 (landscape, a small image scaled up), and 1 x 4 (a banner).
PAGE_SIZES = [(1240, 1754), (2000, 1100), (300, 200), (2000, 120)]
# Pages as the pipeline renders them (2048 px on the longest edge), the tiles the processor cuts
# them into (rows x columns of 512 px, plus the whole page shrunk to one) and the vectors they
# become: 64 a tile, the tile markers and row ends, and the prompt's 19 tokens ([CLS],
# "<|begin_of_text|>User:" in 9 ordinary pieces, "Describe the image.", <end_of_utterance>,
# "\nAssistant:", [SEP]). The real tokenizer may cut the prompt's words into a few more or fewer
# pieces; the tiles and their tokens are the real ones.
REAL_PAGES = {
    "A4": ((1448, 2048), (4, 3), 882),
    "US Letter": ((1583, 2048), (4, 4), 1146),
    "landscape slide": ((2048, 1152), (3, 4), 881),
    "receipt, 80 x 360 mm": ((455, 2048), (4, 1), 354),
}


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbedderProcess]:
    directory = tmp_path_factory.mktemp("embedder")
    process = embedder_start(
        cache_dir=directory / "models",
        log_path=directory / "embedder.log",
        api_key=API_KEY,
        # The wait lets concurrent requests meet in one batch however the threads get scheduled.
        env={
            "DOCDB_EMBEDDER_API_KEYS": f"{API_KEY},{OTHER_KEY}",
            "DOCDB_EMBEDDER_BATCH_WAIT_MS": "150",
        },
    )
    yield process
    process.stop()


@pytest.fixture(scope="module")
def page_b64() -> str:
    return image_base64(page_image("Invoice 2024-17: total due 1,250.00 EUR"))


@pytest.fixture(scope="module")
def tiny_embedder(tmp_path_factory: pytest.TempPathFactory) -> Embedder:
    return tiny_as_served(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def torchvision_embedder(tmp_path_factory: pytest.TempPathFactory) -> Embedder:
    return embedder_load(
        "tiny",
        device="cpu",
        image_backend="torchvision",
        cache_dir=tmp_path_factory.mktemp("models"),
    )


def assert_unit_multivector(vectors: np.ndarray) -> None:
    assert vectors.ndim == 2 and vectors.shape[1] == 128
    assert vectors.shape[0] > 0
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_health_describes_the_tiny_model(service: EmbedderProcess) -> None:
    health = service.health()
    assert health["status"] == "ok"
    assert health["model"] == "tiny"
    assert health["random_test_model"] is True
    assert health["test_delay_ms"] == 0
    assert (health["device"], health["dtype"], health["dim"]) == ("cpu", "float32", 128)
    # On a CPU the default stays PIL, whether torchvision is installed or not.
    assert (health["image_backend"], health["image_device"]) == ("pil", "cpu")
    # The real checkpoint's.
    assert health["geometry"] == {
        "longest_edge": 2048,
        "tile_size": 512,
        "image_splitting": True,
        "patch_size": 16,
        "pixel_shuffle_factor": 4,
        "tile_grid": 8,
        "tokens_per_tile": 64,
    }
    assert set(health["counters"]) >= {"requests", "images_embedded", "queries_embedded"}
    assert API_KEY not in str(health)
    # Built here, not downloaded: no revision; the checksum is its weights file's, as logged.
    tiny_dir = tiny_model_ensure(service.log_path.parent / "models")
    digest = hashlib.sha256((tiny_dir / "model.safetensors").read_bytes()).hexdigest()
    assert (health["revision"], health["weights_sha256"]) == (None, digest)
    assert f"(a local directory), weights sha256 {digest}" in service.log()


def test_page_image_becomes_a_deterministic_unit_multivector(
    service: EmbedderProcess, page_b64: str
) -> None:
    before = service.health()["counters"]
    response = service.post({"input": [page_b64], "model": "ModernVBERT/colmodernvbert"})
    assert response.status_code == 200, response.text
    body = response.json()
    [vectors] = [np.asarray(v, dtype=np.float32) for v in body["embeddings"]]
    assert_unit_multivector(vectors)
    # An A4 page is 4 x 3 tiles plus a global view, 64 tokens each, plus the prompt's tokens.
    assert vectors.shape[0] == REAL_PAGES["A4"][2]
    assert body["metadata"]["model"] == "tiny"
    assert body["metadata"]["num_embeddings_inferred"] == 1
    assert body["metadata"]["time_taken_inference"] >= 0

    [again] = service.embed([page_b64])
    np.testing.assert_allclose(again, vectors, atol=1e-6)
    after = service.health()["counters"]
    assert after["images_embedded"] == before["images_embedded"] + 2
    assert after["requests"] == before["requests"] + 2


def test_data_urls_and_jpeg_are_accepted(service: EmbedderProcess, page_b64: str) -> None:
    [plain] = service.embed([page_b64])
    [data_url] = service.embed([f"data:image/png;base64,{page_b64}"])
    np.testing.assert_allclose(data_url, plain, atol=1e-6)
    [jpeg] = service.embed([image_base64(page_image("A JPEG page"), "JPEG")])
    assert_unit_multivector(jpeg)


def test_a_body_without_content_type_is_read_as_weaviate_sends_it(
    service: EmbedderProcess, page_b64: str
) -> None:
    # Weaviate's multi2multivec-weaviate module posts its JSON with no Content-Type header.
    body = json.dumps({"input": [page_b64], "model": "ModernVBERT/colmodernvbert"}).encode()
    response = requests.post(
        service.url + "/v1/embeddings/embed",
        data=body,
        headers={"Authorization": f"Bearer {service.api_key}", "Content-Type": ""},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    assert np.asarray(response.json()["embeddings"][0]).shape[1] == 128


def test_queries_become_unit_multivectors(service: EmbedderProcess) -> None:
    before = service.health()["counters"]["queries_embedded"]
    short, long = service.embed(
        ["total due", "which quarter had the highest revenue in the northern region"], query=True
    )
    assert_unit_multivector(short)
    assert_unit_multivector(long)
    assert long.shape[0] > short.shape[0]
    assert service.health()["counters"]["queries_embedded"] == before + 2


def test_concurrent_requests_share_forward_passes(
    service: EmbedderProcess, tiny_embedder: Embedder
) -> None:
    # New texts, and the reference computed here: the service answers a query it has just
    # embedded from its recent queries, without the model.
    texts = [f"question number {n} about the report" for n in range(4)]
    alone = [tiny_embedder.embed_queries([text])[0] for text in texts]
    before = service.health()["counters"]
    with ThreadPoolExecutor(len(texts)) as pool:
        together = list(pool.map(lambda text: service.embed([text], query=True)[0], texts))
    after = service.health()["counters"]

    for mine, reference in zip(together, alone, strict=True):
        np.testing.assert_allclose(mine, reference, atol=1e-5)
    # One input per request, so a batch of two or more came from different requests.
    assert after["largest_batch"] >= 2
    assert after["forward_passes"] - before["forward_passes"] < len(texts)


def test_a_query_asked_again_is_answered_without_the_model(service: EmbedderProcess) -> None:
    text = "which supplier invoiced the harbour works in March"
    before = service.health()["counters"]
    (first,) = service.embed([text], query=True)
    # Twice in one request, then as the similarity maps ask for it (with its tokens).
    again, twice = service.embed([text, text], query=True)
    response = requests.post(
        service.url + "/v1/docdb/query-tokens",
        json={"input": text},
        headers={"Authorization": f"Bearer {service.api_key}"},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    with_tokens = response.json()
    health = service.health()
    after = health["counters"]

    np.testing.assert_array_equal(again, first)
    np.testing.assert_array_equal(twice, first)
    np.testing.assert_allclose(np.asarray(with_tokens["embeddings"]), first, atol=1e-6)
    assert len(with_tokens["tokens"]) == first.shape[0]
    assert after["queries_embedded"] - before["queries_embedded"] == 4
    assert after["queries_computed"] - before["queries_computed"] == 1
    assert after["forward_passes"] - before["forward_passes"] == 1
    assert after["recent_query_hits"] - before["recent_query_hits"] == 3
    assert health["recent_queries"]["capacity"] == 512


def test_without_recent_queries_every_query_runs_the_model(tiny_embedder: Embedder) -> None:
    app = create_app(EmbedderConfig(recent_queries=0), tiny_embedder)
    with TestClient(app) as client:
        for _ in range(2):
            response = client.post(
                "/v1/embeddings/embed", json={"input": ["total due"], "is_search_query": True}
            )
            assert response.status_code == 200, response.text
        counters = client.get("/health").json()["counters"]
    assert (counters["queries_embedded"], counters["queries_computed"]) == (2, 2)
    assert counters["recent_query_hits"] == 0


def test_images_of_different_shapes_batch_like_single_images(
    service: EmbedderProcess, page_b64: str
) -> None:
    banner = image_base64(Image.new("RGB", (2000, 120), "navy"))
    page_alone, banner_alone = service.embed([page_b64]), service.embed([banner])
    page_batched, banner_batched = service.embed([page_b64, banner])
    assert banner_batched.shape[0] < page_batched.shape[0]
    np.testing.assert_allclose(page_batched, page_alone[0], atol=1e-5)
    np.testing.assert_allclose(banner_batched, banner_alone[0], atol=1e-5)


def test_maxsim_over_returned_shapes(
    service: EmbedderProcess, page_b64: str, tiny_embedder: Embedder
) -> None:
    [page] = service.embed([page_b64])
    [query] = service.embed(["total due"], query=True)
    score = maxsim(query, page)
    assert -query.shape[0] <= score <= query.shape[0]
    # Every vector of a page finds itself, a perfect match.
    assert maxsim(page, page) == pytest.approx(page.shape[0], rel=1e-5)
    reference = tiny_embedder.processor.score_retrieval(
        [torch.from_numpy(query)], [torch.from_numpy(page)]
    )
    assert score == pytest.approx(reference.item(), rel=1e-4)


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"input": ["***not base64***"]}, 400, "not valid base64"),
        ({"input": ["aGVsbG8gd29ybGQ="]}, 400, "is not a PNG"),
        ({"input": ["data:image/png,plain"]}, 400, "not base64-encoded"),
        ({"input": [decompression_bomb_base64()]}, 413, "too large"),
        ({"input": []}, 400, "empty"),
        ({"input": ["q"] * 65, "is_search_query": True}, 413, "at most 64"),
        ({"input": ["q"], "model": "openai/clip"}, 400, "ModernVBERT/colmodernvbert"),
        ({"input": ["q"], "is_search_query": True, "dimensions": 64}, 400, "128-dimensional"),
        ({"input": "not a list"}, 422, "input"),
        ({"inputs": ["typo"]}, 422, "input"),
    ],
)
def test_bad_requests_answer_with_a_detail(
    service: EmbedderProcess, body: dict, status: int, words: str
) -> None:
    response = service.post(body)
    assert response.status_code == status, response.text
    assert isinstance(response.json()["detail"], str)
    assert words in response.json()["detail"]


def test_malformed_json_is_a_bad_request(service: EmbedderProcess) -> None:
    response = service.post(data=b'{"input": [')
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["detail"]


@pytest.mark.parametrize("header", [None, "Bearer wrong-key", f"Basic {API_KEY}", API_KEY])
def test_a_missing_or_wrong_key_is_refused(
    service: EmbedderProcess, header: str | None, page_b64: str
) -> None:
    headers = {"Authorization": header} if header else {}
    response = service.post({"input": [page_b64]}, headers=headers)
    assert response.status_code == 401
    assert "API key" in response.json()["detail"]


def test_every_configured_key_is_accepted(service: EmbedderProcess) -> None:
    headers = {"Authorization": f"Bearer {OTHER_KEY}"}
    assert service.post({"input": ["q"], "is_search_query": True}, headers=headers).ok


def test_keyless_requests_learn_nothing_about_their_body(service: EmbedderProcess) -> None:
    assert service.post(data=b"{broken", headers={}).status_code == 401


def test_each_request_is_logged_with_its_size(service: EmbedderProcess) -> None:
    service.embed(["one", "two", "three"], query=True)
    assert "POST /v1/embeddings/embed 200 3 queries" in service.log()


def test_a_model_failure_answers_500_with_the_reason(tiny_embedder: Embedder) -> None:
    # The only stand-in in this file: a real model cannot be made to fail on demand (say, run
    # out of GPU memory), so this copy of the tiny model raises instead.
    class FailingEmbedder(Embedder):
        def forward(self, items: object) -> list[np.ndarray]:
            raise RuntimeError("CUDA out of memory")

    failing = FailingEmbedder(
        model=tiny_embedder.model,
        processor=tiny_embedder.processor,
        name="tiny",
        random_test_model=True,
    )
    with TestClient(create_app(EmbedderConfig(model="tiny"), failing)) as client:
        response = client.post(
            "/v1/embeddings/embed", json={"input": ["q"], "is_search_query": True}
        )
    assert response.status_code == 500
    assert "CUDA out of memory" in response.json()["detail"]


@pytest.mark.parametrize("page", REAL_PAGES)
def test_pages_become_the_real_model_s_tiles_and_vectors(
    tiny_embedder: Embedder, page: str
) -> None:
    size, (rows, cols), vectors = REAL_PAGES[page]
    features = tiny_embedder.image_prepare(page_image("A page", size))
    assert tuple(features["pixel_values"].shape[1:]) == (rows * cols + 1, 3, 512, 512)
    layout = tiny_embedder.image_layout(*size)
    assert (layout["rows"], layout["cols"]) == (rows, cols)
    assert len(layout["tiles"]) == rows * cols + 1 and layout["length"] == vectors
    [embedded] = tiny_embedder.forward([features])
    assert embedded.shape == (vectors, 128)


def test_the_test_model_prepares_inputs_as_the_real_checkpoint_does(
    tiny_embedder: Embedder,
) -> None:
    processor = tiny_embedder.processor
    image_processor = processor.image_processor
    assert image_processor.resample == PILImageResampling.LANCZOS
    assert list(image_processor.image_mean) == list(image_processor.image_std) == [0.5] * 3
    tokenizer = processor.tokenizer
    assert tokenizer.model_max_length == 8192
    # ModernBERT's template wraps every text in [CLS] ... [SEP]; `<|begin_of_text|>` is no token
    # of its vocabulary, so the image prompt's copy is ordinary pieces.
    page = tiny_embedder.image_prepare(page_image("A page"))["input_ids"][0].tolist()
    assert "<|begin_of_text|>" not in tokenizer.get_vocab()
    assert [page[0], page[-1]] == [tokenizer.cls_token_id, tokenizer.sep_token_id]
    assert tokenizer.decode(page[1:10]) == "<|begin_of_text|>User:"
    assert page[10] == processor.fake_image_token_id
    assert tokenizer.decode(page[-9:-1]) == "Describe the image.<end_of_utterance>\nAssistant:"
    # A query: no prefix, then 10 <end_of_utterance> tokens that pad its embedding.
    query = tiny_embedder.query_prepare("total due")["input_ids"][0].tolist()
    end_of_utterance = tokenizer.convert_tokens_to_ids("<end_of_utterance>")
    assert query[0] == tokenizer.cls_token_id and tokenizer.decode(query[1:-11]) == "total due"
    assert query[-11:] == [end_of_utterance] * 10 + [tokenizer.sep_token_id]


def test_tiny_model_build_is_deterministic_and_cached(tmp_path: Path) -> None:
    first = tiny_model_build(tmp_path / "a")
    second = tiny_model_build(tmp_path / "b")
    weights = "model.safetensors"
    assert (first / weights).read_bytes() == (second / weights).read_bytes()

    cached = tiny_model_ensure(tmp_path / "cache")
    built_at = (cached / weights).stat().st_mtime_ns
    assert tiny_model_ensure(tmp_path / "cache") == cached
    assert (cached / weights).stat().st_mtime_ns == built_at


def test_build_tiny_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["build-tiny", str(tmp_path / "tiny")]) == 0
    assert str(tmp_path / "tiny") in capsys.readouterr().out
    # Named by its directory, it is still known for the random test model it is.
    loaded = embedder_load(str(tmp_path / "tiny"), device="cpu")
    assert loaded.info()["random_test_model"] is True


def test_config_from_env_defaults_and_overrides() -> None:
    assert config_from_env({}) == EmbedderConfig()
    config = config_from_env(
        {
            "DOCDB_EMBEDDER_MODEL": "tiny",
            "DOCDB_EMBEDDER_PORT": "9000",
            "DOCDB_EMBEDDER_API_KEYS": " a , b ,",
            "DOCDB_EMBEDDER_BATCH_SIZE": "4",
            "DOCDB_EMBEDDER_CACHE_DIR": "/tmp/models",
            "DOCDB_EMBEDDER_IMAGE_BACKEND": "torchvision",
            "DOCDB_EMBEDDER_TEST_DELAY_MS": "300",
        }
    )
    assert (config.model, config.port, config.api_keys) == ("tiny", 9000, ("a", "b"))
    assert (config.batch_size, config.cache_dir) == (4, Path("/tmp/models"))
    assert (config.image_backend, config.test_delay_ms) == ("torchvision", 300)


def test_the_weaviate_key_is_the_default_embedder_key() -> None:
    assert config_from_env({"DOCDB_WEAVIATE_API_KEY": "shared"}).api_keys == ("shared",)
    both = {"DOCDB_WEAVIATE_API_KEY": "shared", "DOCDB_EMBEDDER_API_KEYS": "own"}
    assert config_from_env(both).api_keys == ("own",)


@pytest.mark.parametrize("value", ["eight", "-1", "0"])
def test_a_bad_number_in_the_environment_is_a_clear_error(value: str) -> None:
    with pytest.raises(ConfigError, match="DOCDB_EMBEDDER_MAX_INPUTS"):
        config_from_env({"DOCDB_EMBEDDER_MAX_INPUTS": value})


def test_a_test_delay_slows_each_page_image_the_model_computes_and_nothing_else(
    tmp_path: Path,
) -> None:
    # Long next to what a query takes on a busy machine (0.36 s seen at a load of 4.7 on 2 cores).
    delay_s = 1.0
    slowed = embedder_start(
        cache_dir=tmp_path / "models",
        log_path=tmp_path / "embedder.log",
        env={"DOCDB_EMBEDDER_TEST_DELAY_MS": str(round(delay_s * 1000))},
    )
    pages = [image_base64(page_image(f"Page {number} of a slow report")) for number in (1, 2)]
    try:
        assert slowed.health()["test_delay_ms"] == round(delay_s * 1000)
        # The first forward pass of a process pays one-off set-up costs.
        slowed.embed(["warm-up"], query=True)
        images_s = _timed(lambda: slowed.embed(pages))
        query_s = _timed(lambda: slowed.embed(["which region grew"], query=True))
        # Pages embedded a moment ago come from the recent pages, not from the model.
        slowed.embed(pages)
        counters = slowed.health()["counters"]
    finally:
        slowed.stop()
    assert images_s >= 2 * delay_s
    assert query_s < delay_s
    assert (counters["images_computed"], counters["recent_hits"]) == (2, 2)
    assert counters["forward_seconds"] >= 2 * delay_s


def test_a_test_delay_is_refused_with_a_real_model(tiny_embedder: Embedder) -> None:
    # No real checkpoint here (the hub is out of reach): the tiny weights, marked as a real
    # model, stand in for one; the service decides by that mark.
    real = Embedder(
        model=tiny_embedder.model,
        processor=tiny_embedder.processor,
        name="ModernVBERT/colmodernvbert-merged",
        random_test_model=False,
    )
    with pytest.raises(ConfigError, match=r"DOCDB_EMBEDDER_TEST_DELAY_MS=300 .* real model"):
        create_app(EmbedderConfig(test_delay_ms=300), real)
    create_app(EmbedderConfig(), real)


def _timed(work: Callable[[], object]) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def test_a_missing_local_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"does not exist.*DOCDB_EMBEDDER_MODEL"):
        embedder_load(str(tmp_path / "no-such-model"), device="cpu")


def test_a_directory_without_a_model_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"Could not load the model from .*save_pretrained"):
        embedder_load(str(tmp_path), device="cpu")


def _embedder_run(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`python -m docdb.embedder` until it exits (these tests expect it to stop at start-up)."""
    return subprocess.run(
        [sys.executable, "-m", "docdb.embedder"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.services
def test_an_unreachable_hub_stops_the_service_with_a_clear_error(tmp_path: Path) -> None:
    # A subprocess: huggingface_hub reads HF_HUB_OFFLINE once, when first imported.
    env = offline_env(
        HF_HOME=str(tmp_path / "hf"),
        DOCDB_EMBEDDER_MODEL="ModernVBERT/colmodernvbert-merged",
        DOCDB_EMBEDDER_DEVICE="cpu",
    )
    result = _embedder_run(env)
    assert result.returncode == 1
    assert (
        "Could not download ModernVBERT/colmodernvbert-merged at revision main from the Hugging "
        "Face hub" in result.stderr
    )
    assert "DOCDB_EMBEDDER_MODEL" in result.stderr and "`tiny`" in result.stderr


@pytest.mark.parametrize(
    ("asked", "device", "torchvision_error", "chosen"),
    [
        ("auto", "cpu", None, "pil"),
        ("auto", "cuda", None, "torchvision"),
        ("auto", "cuda", "No module named 'torchvision'", "pil"),
        ("pil", "cuda", None, "pil"),
        ("torchvision", "cpu", None, "torchvision"),
    ],
)
def test_the_image_backend_follows_the_device(
    asked: str, device: str, torchvision_error: str | None, chosen: str
) -> None:
    # torch.device("cuda") is only a name: no GPU is needed to decide.
    backend = image_backend_resolve(
        asked, torch.device(device), torchvision_error=torchvision_error
    )
    assert backend == chosen


def test_a_gpu_without_torchvision_warns_that_preprocessing_stays_on_the_cpu(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="docdb.embedder"):
        image_backend_resolve(
            "auto", torch.device("cuda"), torchvision_error="No module named 'torchvision'"
        )
    [record] = caplog.records
    assert "No module named 'torchvision'" in record.message
    assert "PIL on CPU threads" in record.message and "`gpu` extra" in record.message


def test_an_unusable_image_backend_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="use auto, pil or torchvision"):
        embedder_load("tiny", device="cpu", image_backend="opencv", cache_dir=tmp_path)
    with pytest.raises(ModelLoadError, match=r"torchvision cannot be imported .*`gpu` extra"):
        image_backend_resolve(
            "torchvision", torch.device("cpu"), torchvision_error="No module named 'torchvision'"
        )


def test_collate_pads_inputs_on_the_device_they_are_on() -> None:
    # Meta tensors have no data: any copy to the host on the way would fail.
    def page(tiles: int, tokens: int) -> Features:
        return {
            "input_ids": torch.ones(1, tokens, dtype=torch.long),
            "attention_mask": torch.ones(1, tokens, dtype=torch.long),
            "pixel_values": torch.zeros(1, tiles, 3, 8, 8, device="meta"),
            "pixel_attention_mask": torch.ones(1, tiles, 8, 8, dtype=torch.long, device="meta"),
        }

    batch = features_collate([page(5, 40), page(2, 30)], pad_token_id=0, padding_side="left")
    assert batch["pixel_values"].device.type == "meta"
    assert batch["pixel_values"].shape == (2, 5, 3, 8, 8)
    assert batch["pixel_attention_mask"].dtype == torch.bool
    assert batch["input_ids"].shape == (2, 40) and batch["input_ids"].device.type == "cpu"


@needs_torchvision
@pytest.mark.parametrize("size", PAGE_SIZES)
def test_the_torchvision_backend_prepares_what_pil_does(
    tiny_embedder: Embedder, torchvision_embedder: Embedder, size: tuple[int, int]
) -> None:
    image = page_image("Invoice 2024-17: total due 1,250.00 EUR", size)
    pil = tiny_embedder.image_prepare(image)
    tv = torchvision_embedder.image_prepare(image)
    # The same tiles, so the same prompt around them.
    assert torch.equal(tv["input_ids"], pil["input_ids"])
    assert torch.equal(tv["pixel_attention_mask"], pil["pixel_attention_mask"])
    assert tv["pixel_values"].shape == pil["pixel_values"].shape
    # Both resize with LANCZOS on a CPU; they round differently by a level or two of 255.
    difference = (tv["pixel_values"] - pil["pixel_values"]).abs()
    assert difference.mean() < 1e-3 and difference.max() < 0.05
    [from_pil] = tiny_embedder.forward([pil])
    [from_tv] = torchvision_embedder.forward([tv])
    assert from_tv.shape == from_pil.shape
    assert (from_tv * from_pil).sum(axis=1).min() > 0.999


@needs_torchvision
def test_torchvision_inputs_of_different_shapes_batch_like_single_images(
    torchvision_embedder: Embedder,
) -> None:
    info = torchvision_embedder.info()
    assert (info["image_backend"], info["image_device"]) == ("torchvision", "cpu")
    items = [torchvision_embedder.image_prepare(page_image("A page", size)) for size in PAGE_SIZES]
    batched = torchvision_embedder.forward(items)
    for item, vectors in zip(items, batched, strict=True):
        [alone] = torchvision_embedder.forward([item])
        np.testing.assert_allclose(vectors, alone, atol=1e-5)


@pytest.mark.services
@needs_torchvision
def test_the_service_takes_its_image_backend_from_the_environment(
    tmp_path: Path, page_b64: str
) -> None:
    service = embedder_start(
        cache_dir=tmp_path / "models",
        log_path=tmp_path / "embedder.log",
        env={"DOCDB_EMBEDDER_IMAGE_BACKEND": "torchvision"},
    )
    try:
        health = service.health()
        assert (health["image_backend"], health["image_device"]) == ("torchvision", "cpu")
        [png] = service.embed([page_b64])
        [jpeg] = service.embed([image_base64(page_image("A JPEG page"), "JPEG")])
        assert_unit_multivector(png)
        assert_unit_multivector(jpeg)
        assert "preprocessed by the torchvision image processor on cpu" in service.log()
    finally:
        service.stop()


def test_several_workers_serve_the_same_vectors(
    service: EmbedderProcess, page_b64: str, tmp_path: Path
) -> None:
    workers = embedder_start(
        cache_dir=tmp_path / "models",
        log_path=tmp_path / "workers.log",
        env={"DOCDB_EMBEDDER_WORKERS": "2"},
    )
    try:
        # Each new connection goes to either process: both come up, each with the model (the
        # first answers while the other may still be loading it).
        answered: set[int] = set()
        deadline = time.monotonic() + 60
        while len(answered) < 2 and time.monotonic() < deadline:
            answered.add(workers.health()["process"])
        assert len(answered) == 2 and workers.health()["workers"] == 2
        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(lambda _: workers.embed([page_b64])[0], range(8)))
        expected = service.embed([page_b64])[0]
        for vectors in results:
            np.testing.assert_allclose(vectors, expected, atol=1e-6)
        # The model ran once for the page: the other requests found it in their worker's
        # recent pages or in what the other worker shared.
        counters = _each_worker(workers, 2)
        assert sum(c["images_computed"] for c in counters) == 1
        assert sum(c["recent_hits"] + c["shared_hits"] for c in counters) == 7
    finally:
        workers.stop()
    # Stopping the parent stops its workers.
    assert workers.process.returncode == 0
    assert workers.log().count("Finished server process") == 2


@pytest.mark.services
def test_a_worker_that_cannot_load_the_model_stops_the_service(tmp_path: Path) -> None:
    # The directory exists, so the parent passes it on; the workers fail to load it.
    env = offline_env(
        DOCDB_EMBEDDER_MODEL=str(tmp_path),
        DOCDB_EMBEDDER_DEVICE="cpu",
        DOCDB_EMBEDDER_WORKERS="2",
        DOCDB_EMBEDDER_PORT=str(free_port()),
    )
    result = _embedder_run(env)
    assert result.returncode == 1
    assert f"Could not load the model from {tmp_path}" in result.stdout
    assert "a worker could not start" in result.stderr


@pytest.mark.parametrize(
    ("memory_gib", "workers"), [(8, 1), (24, 1), (40, 2), (48, 3), (80, 4), (141, 4)]
)
def test_a_gpu_gets_as_many_workers_as_its_memory_holds(memory_gib: float, workers: int) -> None:
    assert gpu_workers(memory_gib) == workers


def test_the_worker_count_is_configured_or_one_on_a_cpu() -> None:
    assert config_from_env({}).workers is None
    assert workers_resolve(config_from_env({"DOCDB_EMBEDDER_DEVICE": "cpu"})) == 1
    configured = {"DOCDB_EMBEDDER_DEVICE": "cpu", "DOCDB_EMBEDDER_WORKERS": "3"}
    assert workers_resolve(config_from_env(configured)) == 3
    with pytest.raises(ConfigError, match="DOCDB_EMBEDDER_WORKERS"):
        config_from_env({"DOCDB_EMBEDDER_WORKERS": "-2"})


def _each_worker(process: EmbedderProcess, workers: int) -> list[dict]:
    """Every worker's counters (each new connection reaches any of them)."""
    seen: dict[int, dict] = {}
    deadline = time.monotonic() + 30
    while len(seen) < workers and time.monotonic() < deadline:
        health = process.health()
        seen[health["process"]] = health["counters"]
    assert len(seen) == workers
    return list(seen.values())


def test_shared_pages_hand_a_page_to_the_next_worker(tmp_path: Path) -> None:
    shared = SharedPages(tmp_path, capacity=2, dim=4)
    vectors = np.arange(8, dtype=np.float32).reshape(2, 4)
    assert shared.get(b"a") is None
    assert shared.reserve(b"a")
    # Another worker asking now waits: the page is being computed.
    assert not shared.reserve(b"a")
    shared.put(b"a", vectors)
    np.testing.assert_array_equal(shared.get(b"a"), vectors)
    assert shared.reserve(b"a"), "the lock goes with the result"
    assert coroutine_run(shared.wait(b"a", timeout=1)) is not None


def test_a_lock_left_by_a_dead_worker_is_taken_over(tmp_path: Path) -> None:
    shared = SharedPages(tmp_path, capacity=2, dim=4)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    (tmp_path / f"{b'a'.hex()}.lock").write_text(dead.stdout.strip())
    # Its waiters stop waiting at once, and the page is free to compute.
    assert coroutine_run(shared.wait(b"a", timeout=30)) is None
    assert shared.reserve(b"a")


def test_a_failed_page_releases_its_waiters(tmp_path: Path) -> None:
    shared = SharedPages(tmp_path, capacity=2, dim=4)
    assert shared.reserve(b"a")

    async def fail_soon() -> None:
        await asyncio.sleep(0.1)
        shared.release(b"a")

    async def wait() -> np.ndarray | None:
        return (await asyncio.gather(shared.wait(b"a", timeout=30), fail_soon()))[0]

    started = time.monotonic()
    assert coroutine_run(wait()) is None
    assert time.monotonic() - started < 5


def test_shared_pages_keep_the_newest(tmp_path: Path) -> None:
    shared = SharedPages(tmp_path, capacity=2, dim=4)
    for index, key in enumerate([b"a", b"b", b"c"]):
        shared.put(key, np.full((1, 4), index, dtype=np.float32))
        os.utime(tmp_path / f"{key.hex()}.f32", (index, index))
    shared.prune()
    assert shared.get(b"a") is None
    assert shared.get(b"b") is not None and shared.get(b"c") is not None


def test_a_page_that_cannot_be_shared_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shared = SharedPages(tmp_path, capacity=2, dim=4)
    assert shared.reserve(b"a")

    def full(*args: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    # As when Docker's 64 MB /dev/shm is full.
    monkeypatch.setattr("docdb.embedder.shared.os.replace", full)
    shared.put(b"a", np.zeros((1, 4), dtype=np.float32))
    assert shared.get(b"a") is None
    assert list(tmp_path.iterdir()) == [], "no temporary file, no lock left"

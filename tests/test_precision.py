"""Speed settings of the embedder on a CPU: the arithmetic (`auto`, bfloat16, int8) and the page
size before tiling. Their speed and fidelity on the full-size model: bench/precision.py."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from embedder_helpers import page_image

from docdb.embedder import model
from docdb.embedder.config import config_from_env
from docdb.embedder.model import (
    Embedder,
    ModelLoadError,
    dtype_resolve,
    embedder_configured,
    embedder_load,
)

CPU = torch.device("cpu")
A4 = (1448, 2048)


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="module")
def float32_embedder(models_dir: Path) -> Embedder:
    return embedder_load("tiny", device="cpu", dtype="float32", cache_dir=models_dir)


@pytest.fixture(scope="module")
def int8_embedder(models_dir: Path) -> Embedder:
    return embedder_load("tiny", device="cpu", dtype="int8", cache_dir=models_dir)


@pytest.mark.parametrize("native", [True, False])
def test_auto_is_bfloat16_where_the_cpu_has_it(
    native: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(model, "cpu_features", lambda: {"bfloat16": native})
    assert dtype_resolve("auto", CPU) == ("bfloat16" if native else "float32")
    # A GPU computes bfloat16 natively whatever its host CPU does.
    assert dtype_resolve("auto", torch.device("cuda")) == "bfloat16"
    assert dtype_resolve("float32", CPU) == "float32"


def test_int8_is_for_a_cpu_and_unknown_dtypes_are_named() -> None:
    with pytest.raises(ModelLoadError, match="int8 runs on a CPU only"):
        dtype_resolve("int8", torch.device("cuda"))
    with pytest.raises(ModelLoadError, match=r"Unknown dtype 'int4'.*int8"):
        dtype_resolve("int4", CPU)


def test_int8_quantizes_the_linear_layers_and_keeps_the_vectors(
    float32_embedder: Embedder, int8_embedder: Embedder
) -> None:
    assert int8_embedder.info()["dtype"] == "int8"
    # What the CPU does natively, for a person choosing a dtype.
    assert set(int8_embedder.info()["cpu"]) >= {"capability", "bfloat16", "amx", "vnni"}
    linear = [m for m in int8_embedder.model.modules() if type(m) is torch.nn.Linear]
    dynamic = [
        m
        for m in int8_embedder.model.modules()
        if isinstance(m, torch.ao.nn.quantized.dynamic.Linear)
    ]
    # Only the last projection to 128 dimensions stays float32.
    assert len(linear) == 1 and len(dynamic) > 10

    page = page_image("Quarterly report: revenue grew 12 percent in the northern region")
    reference, quantized = (e.embed_images([page])[0] for e in (float32_embedder, int8_embedder))
    assert quantized.shape == reference.shape
    np.testing.assert_allclose(np.linalg.norm(quantized, axis=1), 1.0, atol=1e-5)
    assert float((reference * quantized).sum(axis=1).mean()) > 0.99
    queries = [e.embed_queries(["northern revenue"])[0] for e in (float32_embedder, int8_embedder)]
    assert float((queries[0] * queries[1]).sum(axis=1).mean()) > 0.99
    # A page's vectors do not depend on the pages it is batched with.
    other = page_image("Minutes of the harbour board", size=A4)
    together = int8_embedder.embed_images([page, other])
    np.testing.assert_array_equal(together[0], quantized)


def test_a_smaller_page_size_makes_fewer_tiles(
    models_dir: Path, float32_embedder: Embedder
) -> None:
    config = config_from_env({"DOCDB_EMBEDDER_LONGEST_EDGE": "1024"})
    assert config.longest_edge == 1024
    small = embedder_configured(
        replace(config, model="tiny", device="cpu", dtype="float32", cache_dir=models_dir)
    )
    assert small.info()["geometry"]["longest_edge"] == 1024
    # An A4 page: 2 x 2 tiles and the whole page, 5 instead of 4 x 3 and the whole page.
    layout = small.image_layout(*A4)
    assert (layout["rows"], layout["cols"], len(layout["tiles"])) == (2, 2, 5)
    assert len(float32_embedder.image_layout(*A4)["tiles"]) == 13
    page = page_image("Fine print", size=A4)
    assert small.embed_images([page])[0].shape == (layout["length"], 128)
    assert float32_embedder.embed_images([page])[0].shape[0] == 882


def test_a_page_size_must_be_whole_tiles(models_dir: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"DOCDB_EMBEDDER_LONGEST_EDGE=1000.*multiple.*512"):
        embedder_load("tiny", device="cpu", longest_edge=1000, cache_dir=models_dir)


def test_int8_queries_run_through_a_quantized_copy_of_the_text_model(models_dir: Path) -> None:
    config = config_from_env(
        {
            "DOCDB_EMBEDDER_MODEL": "tiny",
            "DOCDB_EMBEDDER_DEVICE": "cpu",
            "DOCDB_EMBEDDER_DTYPE": "float32",
            "DOCDB_EMBEDDER_CACHE_DIR": str(models_dir),
        }
    )
    reference = embedder_configured(config)
    quick = embedder_configured(replace(config, query_dtype="int8"))
    assert quick.info()["query_dtype"] == "int8" and quick.info()["dtype"] == "float32"
    # Queries only read the text model: the vision model is the page model's own.
    assert quick.query_model.vlm.vision_model is quick.model.vlm.vision_model
    assert quick.query_model.vlm.text_model is not quick.model.vlm.text_model
    page = page_image("Quarterly report: revenue grew 12 percent in the northern region")
    np.testing.assert_array_equal(quick.embed_images([page])[0], reference.embed_images([page])[0])
    queries = [e.embed_queries(["northern revenue"])[0] for e in (reference, quick)]
    assert queries[0].shape == queries[1].shape
    assert float((queries[0] * queries[1]).sum(axis=1).mean()) > 0.99
    # int8 layers quantize a batch's activations together: a query's vectors must not depend
    # on the other queries (another person's) asked at the same time, or on their padding.
    texts = ["northern revenue", "a much longer question about the quarterly report's figures"]
    together = quick.embed_queries(texts)
    for text, vectors in zip(texts, together, strict=True):
        np.testing.assert_array_equal(vectors, quick.embed_queries([text])[0])
    with pytest.raises(ModelLoadError, match="DOCDB_EMBEDDER_QUERY_DTYPE"):
        model.query_model_quantize(reference, "int4")


@pytest.mark.parametrize("vnni", [True, False])
def test_auto_queries_are_int8_where_the_cpu_has_int8_dot_products(
    vnni: bool, models_dir: Path
) -> None:
    embedder = embedder_load("tiny", device="cpu", dtype="float32", cache_dir=models_dir)
    embedder.cpu = {**(embedder.cpu or {}), "vnni": vnni}
    model.query_model_quantize(embedder, "auto")
    assert embedder.info()["query_dtype"] == ("int8" if vnni else "float32")
    assert (embedder.query_model is embedder.model) is not vnni
    assert config_from_env({}).query_dtype == "auto"

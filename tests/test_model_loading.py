"""Which checkpoints the embedder loads and how it refuses the others, and its `check` command.

No real checkpoint is reachable here (the hub is not), so the wrong checkpoints are the tiny test
model saved the ways a wrong one is: with renamed weights, as another model type, as an adapter.
"""

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from embedder_helpers import REPO_ROOT, offline_env
from fastapi.testclient import TestClient
from safetensors.torch import load_file, save_file

from docdb.embedder import check as check_module
from docdb.embedder import model as model_module
from docdb.embedder.app import create_app
from docdb.embedder.check import check_run, sample_rank
from docdb.embedder.config import EmbedderConfig, config_from_env
from docdb.embedder.model import (
    HUB_FILE_PATTERNS,
    MERGED_MODEL,
    Embedder,
    ModelLoadError,
    embedder_load,
    weights_sha256,
)
from docdb.embedder.testmodel import TINY_MARKER, tiny_model_build

WEIGHTS = "model.safetensors"
# What a hub download of the default model looks like, at a made-up commit.
COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model_build(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="module")
def renamed_dir(tiny_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model with its projection saved under colpali-engine's name for it."""
    path = Path(shutil.copytree(tiny_dir, tmp_path_factory.mktemp("renamed") / "model"))
    weights_rename(path, {"embedding_proj_layer.weight": "custom_text_proj.weight"})
    return path


def weights_rename(path: Path, names: dict[str, str]) -> None:
    weights = load_file(path / WEIGHTS)
    renamed = {names.get(name, name): tensor for name, tensor in weights.items()}
    save_file(renamed, path / WEIGHTS, metadata={"format": "pt"})


def test_renamed_weights_are_refused_naming_them(renamed_dir: Path) -> None:
    with pytest.raises(ModelLoadError) as refused:
        embedder_load(str(renamed_dir), device="cpu")
    message = str(refused.value)
    assert "1 missing (embedding_proj_layer.weight)" in message
    assert "1 unexpected (custom_text_proj.weight)" in message
    assert "every search would be noise" in message
    assert f"DOCDB_EMBEDDER_MODEL={MERGED_MODEL}" in message
    assert "DOCDB_EMBEDDER_MODEL_REVISION" in message


def test_many_renamed_weights_are_counted_and_the_first_named(
    tiny_dir: Path, tmp_path: Path
) -> None:
    # The text model's weights under the prefix older saves used.
    path = Path(shutil.copytree(tiny_dir, tmp_path / "model"))
    old = {
        name: name.replace("vlm.text_model.", "model.text_model.")
        for name in load_file(path / WEIGHTS)
        if name.startswith("vlm.text_model.")
    }
    weights_rename(path, old)
    first = sorted(old)[: model_module.KEYS_SHOWN]
    with pytest.raises(ModelLoadError) as refused:
        embedder_load(str(path), device="cpu")
    message = str(refused.value)
    more = len(old) - model_module.KEYS_SHOWN
    assert f"{len(old)} missing ({', '.join(first)} and {more} more)" in message
    assert f"{len(old)} unexpected (model.text_model." in message


@pytest.mark.services
def test_the_embedder_refuses_to_start_on_renamed_weights(renamed_dir: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "docdb.embedder"],
        cwd=REPO_ROOT,
        env=offline_env(DOCDB_EMBEDDER_MODEL=str(renamed_dir), DOCDB_EMBEDDER_DEVICE="cpu"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert "custom_text_proj.weight" in result.stderr
    assert "embedding_proj_layer.weight" in result.stderr


def test_another_model_type_is_refused(tiny_dir: Path, tmp_path: Path) -> None:
    # ModernVBERT's base model, saved as transformers saves it: no retrieval head.
    path = Path(shutil.copytree(tiny_dir, tmp_path / "model"))
    config = json.loads((path / "config.json").read_text())
    base = {**config["vlm_config"], "architectures": ["ModernVBertForMaskedLM"]}
    (path / "config.json").write_text(json.dumps(base))
    with pytest.raises(ModelLoadError) as refused:
        embedder_load(str(path), device="cpu")
    message = str(refused.value)
    assert "holds a modernvbert model (ModernVBertForMaskedLM)" in message
    assert "not ColModernVBERT's retrieval model" in message
    assert f"DOCDB_EMBEDDER_MODEL={MERGED_MODEL}" in message


def test_another_architecture_of_the_same_type_is_refused(tiny_dir: Path, tmp_path: Path) -> None:
    path = Path(shutil.copytree(tiny_dir, tmp_path / "model"))
    config = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps({**config, "architectures": ["ColModernVBert"]}))
    with pytest.raises(ModelLoadError, match=r"colmodernvbert model \(ColModernVBert\), not"):
        embedder_load(str(path), device="cpu")


@pytest.mark.parametrize("name", ["ModernVBERT/colmodernvbert", "modernvbert/ColModernVBERT"])
def test_the_lora_adapter_is_refused_before_any_download(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The hub cannot be reached from here; a download would fail the test rather than the hub.
    def download(*args: object, **kwargs: object) -> str:
        raise AssertionError("the adapter must be refused before a download")

    monkeypatch.setattr(model_module, "snapshot_download", download)
    with pytest.raises(ModelLoadError) as refused:
        embedder_load(name, device="cpu")
    message = str(refused.value)
    assert f"{name} is a LoRA adapter" in message
    assert f"Set DOCDB_EMBEDDER_MODEL={MERGED_MODEL}" in message


def test_a_directory_holding_an_adapter_is_refused(tmp_path: Path) -> None:
    (tmp_path / "adapter_config.json").write_text(
        json.dumps({"peft_type": "LORA", "base_model_name_or_path": "ModernVBERT/modernvbert"})
    )
    with pytest.raises(ModelLoadError, match=rf"{tmp_path} is a LoRA adapter.*{MERGED_MODEL}"):
        embedder_load(str(tmp_path), device="cpu")


@pytest.mark.services
def test_several_workers_are_not_started_on_an_adapter(tmp_path: Path) -> None:
    # The parent refuses it once, before starting workers that would each refuse it.
    (tmp_path / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA"}))
    result = subprocess.run(
        [sys.executable, "-m", "docdb.embedder"],
        cwd=REPO_ROOT,
        env=offline_env(
            DOCDB_EMBEDDER_MODEL=str(tmp_path),
            DOCDB_EMBEDDER_DEVICE="cpu",
            DOCDB_EMBEDDER_WORKERS="2",
        ),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert f"docdb.embedder: {tmp_path} is a LoRA adapter" in result.stderr
    assert "worker processes" not in result.stdout + result.stderr  # none was started


def hub_snapshot(tiny_dir: Path, root: Path, commit: str) -> Path:
    """The tiny model laid out the way huggingface_hub keeps a download, without the mark of a
    test model: the embedder takes it for the real one."""
    snapshot = root / "models--ModernVBERT--colmodernvbert-merged" / "snapshots" / commit
    shutil.copytree(tiny_dir, snapshot)
    (snapshot / TINY_MARKER).unlink()
    return snapshot


def test_the_pinned_revision_reaches_the_download(
    tiny_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The hub cannot be reached from here: snapshot_download is replaced by one that records
    # what it is asked and answers with a snapshot directory.
    snapshot = hub_snapshot(tiny_dir, tmp_path, COMMIT)
    asked: list[tuple[str, dict[str, Any]]] = []

    def download(repo_id: str, **kwargs: Any) -> str:
        asked.append((repo_id, kwargs))
        return str(snapshot)

    monkeypatch.setattr(model_module, "snapshot_download", download)
    defaults = EmbedderConfig()
    embedder = embedder_load(defaults.model, revision=defaults.model_revision, device="cpu")
    assert asked == [
        (MERGED_MODEL, {"revision": defaults.model_revision, "allow_patterns": HUB_FILE_PATTERNS})
    ]
    assert embedder.revision == f"{defaults.model_revision} ({COMMIT})"
    assert embedder.random_test_model is False

    # The setting reaches it through the service's own start-up, and /health reports it.
    pinned = config_from_env(
        {"DOCDB_EMBEDDER_MODEL_REVISION": COMMIT, "DOCDB_EMBEDDER_DEVICE": "cpu"}
    )
    with TestClient(create_app(pinned)) as client:
        health = client.get("/health").json()
    assert asked[-1] == (MERGED_MODEL, {"revision": COMMIT, "allow_patterns": HUB_FILE_PATTERNS})
    assert health["revision"] == COMMIT
    assert health["weights_sha256"] == hashlib.sha256((snapshot / WEIGHTS).read_bytes()).hexdigest()


def test_the_start_up_log_names_the_revision_and_checksum(
    tiny_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("INFO", logger="docdb.embedder"):
        embedder = embedder_load(str(tiny_dir), device="cpu")
    digest = hashlib.sha256((tiny_dir / WEIGHTS).read_bytes()).hexdigest()
    assert embedder.info()["weights_sha256"] == digest
    assert embedder.info()["revision"] is None
    assert f"(a local directory), weights sha256 {digest}" in caplog.text


def test_the_checksum_of_sharded_weights_is_that_of_sha256sum_lines(tmp_path: Path) -> None:
    shards = {"model-00001-of-00002.safetensors": b"one", "model-00002-of-00002.safetensors": b"2"}
    for name, data in reversed(shards.items()):
        (tmp_path / name).write_bytes(data)
    # What `sha256sum *.safetensors` prints: by name, whatever order the files were written in.
    lines = "".join(
        f"{hashlib.sha256(data).hexdigest()}  {name}\n" for name, data in shards.items()
    )
    assert weights_sha256(tmp_path) == hashlib.sha256(lines.encode()).hexdigest()


def test_the_sample_rank_counts_a_tie_against_the_sample() -> None:
    query = np.eye(2, dtype=np.float32)
    sample = np.eye(2, dtype=np.float32)
    assert sample_rank(query, [sample, sample * 0.5, sample * 0.1]) == 1
    assert sample_rank(query, [sample, sample]) == 2
    assert sample_rank(query, [sample * 0.5, sample, sample * 0.1]) == 2


def test_check_exits_1_when_the_model_cannot_load(renamed_dir: Path) -> None:
    lines: list[str] = []
    assert check_run(EmbedderConfig(model=str(renamed_dir), device="cpu"), lines.append) == 1
    assert "FAILED to load the model" in lines[-1] and "custom_text_proj.weight" in lines[-1]


def test_check_exits_2_when_a_real_model_ranks_wrongly(
    tiny_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No real checkpoint here: the tiny weights, marked as a real model, rank at random, as a
    # real model with weights left random would.
    tiny = embedder_load(str(tiny_dir), device="cpu")
    real = Embedder(
        model=tiny.model, processor=tiny.processor, name=MERGED_MODEL, random_test_model=False
    )
    monkeypatch.setattr(check_module, "embedder_configured", lambda config: real)
    lines: list[str] = []
    assert check_run(EmbedderConfig(device="cpu"), lines.append) == 2
    assert any(line.endswith("WRONG") for line in lines)
    assert lines[-1].startswith("\nFAILED: ") and "rankings are wrong" in lines[-1]


@pytest.mark.services
def test_check_runs_end_to_end_with_the_test_model(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "docdb.embedder", "check"],
        cwd=REPO_ROOT,
        env=offline_env(
            DOCDB_EMBEDDER_MODEL="tiny",
            DOCDB_EMBEDDER_DEVICE="cpu",
            DOCDB_EMBEDDER_CACHE_DIR=str(tmp_path),
        ),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "tiny: the RANDOM TEST MODEL, whose rankings are noise" in out
    assert "weights   sha256 " in out and "load      " in out
    pages = [line for line in out.splitlines() if line.endswith(" s") and " vectors " in line]
    assert [line.split()[0] for line in pages] == ["sample", "other", "other", "other"]
    queries = [line for line in out.splitlines() if " vectors " in line and " rank " in line]
    assert [line.split()[0] for line in queries] == ["own"] * 3 + ["unrelated"] * 3
    assert all(line.endswith("  noise") for line in queries)
    assert "Rankings are NOISE with the random test model" in out

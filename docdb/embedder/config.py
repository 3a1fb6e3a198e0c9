"""Embedder settings from DOCDB_EMBEDDER_* environment variables, with defaults that just work."""

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from docdb.embedder.model import DEFAULT_MODEL


class ConfigError(ValueError):
    """An environment variable holds a value the embedder cannot use."""


@dataclass(frozen=True)
class EmbedderConfig:
    model: str = DEFAULT_MODEL
    device: str = "auto"
    dtype: str = "auto"
    # auto: torchvision on a GPU (preprocessing there), PIL on a CPU; or pil, torchvision.
    image_backend: str = "auto"
    host: str = "127.0.0.1"
    port: int = 8011
    # Empty: no authentication.
    api_keys: tuple[str, ...] = ()
    # None: 32 on a GPU, 8 on a CPU (where batching barely helps but bounds memory).
    batch_size: int | None = None
    # How long the model thread waits for more inputs before running a partial batch.
    batch_wait_ms: int = 0
    max_inputs: int = 64
    # Page embeddings kept by image content, so that Weaviate's second request for a page
    # (its pooled vector) needs no second forward pass. ~0.45 MB each at full size; 0: none.
    recent_pages: int = 256
    cache_dir: Path = Path("data/models")
    # Processes serving the model, each with its own copy and batcher. None: 1 on a CPU, and on
    # a GPU as many as keep it busy (docdb/embedder/__main__.py).
    workers: int | None = None
    # Set by the parent process for its workers: where they share page embeddings (shared.py).
    shared_dir: Path | None = None
    # The random test model only: milliseconds each page image it computes costs on top, so
    # tests and benchmarks run the whole pipeline at a real model's pace with the tiny one.
    test_delay_ms: int = 0


def config_from_env(environ: Mapping[str, str]) -> EmbedderConfig:
    def get(name: str, default: str) -> str:
        return environ.get(f"DOCDB_EMBEDDER_{name}", "").strip() or default

    batch_size = _positive_int("DOCDB_EMBEDDER_BATCH_SIZE", get("BATCH_SIZE", "0"), allow_zero=True)
    return EmbedderConfig(
        model=get("MODEL", DEFAULT_MODEL),
        device=get("DEVICE", "auto"),
        dtype=get("DTYPE", "auto"),
        image_backend=get("IMAGE_BACKEND", "auto"),
        host=get("HOST", "127.0.0.1"),
        port=_positive_int("DOCDB_EMBEDDER_PORT", get("PORT", "8011")),
        # Weaviate forwards its client's key, so by default the embedder accepts that one.
        api_keys=tuple(
            key.strip()
            for key in get("API_KEYS", environ.get("DOCDB_WEAVIATE_API_KEY", "")).split(",")
            if key.strip()
        ),
        batch_size=batch_size or None,
        batch_wait_ms=_positive_int(
            "DOCDB_EMBEDDER_BATCH_WAIT_MS", get("BATCH_WAIT_MS", "0"), allow_zero=True
        ),
        max_inputs=_positive_int("DOCDB_EMBEDDER_MAX_INPUTS", get("MAX_INPUTS", "64")),
        recent_pages=_positive_int(
            "DOCDB_EMBEDDER_RECENT_PAGES", get("RECENT_PAGES", "256"), allow_zero=True
        ),
        cache_dir=Path(get("CACHE_DIR", "data/models")),
        workers=_positive_int("DOCDB_EMBEDDER_WORKERS", get("WORKERS", "0"), allow_zero=True)
        or None,
        shared_dir=Path(shared) if (shared := get("SHARED_DIR", "")) else None,
        test_delay_ms=_positive_int(
            "DOCDB_EMBEDDER_TEST_DELAY_MS", get("TEST_DELAY_MS", "0"), allow_zero=True
        ),
    )


def _positive_int(name: str, value: str, *, allow_zero: bool = False) -> int:
    try:
        number = int(value)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, not {value!r}.") from None
    if number < 0 or (number == 0 and not allow_zero):
        raise ConfigError(f"{name} must be {'0 or more' if allow_zero else 'at least 1'}.")
    return number

"""Embedder settings from DOCDB_EMBEDDER_* environment variables.

Their defaults and meanings are in docdb/config.py's table, read through its typed readers: they
refuse bad values with the variable's name, which is all pydantic-settings would add here, and
without it the defaults stay in that one table rather than in a settings class as well.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from docdb.config import SettingError, data_dir, env_bool, env_int, env_list, env_str

# One error for a bad setting, whether the table's readers find it or the embedder (service.py):
# its start-up reports both alike.
ConfigError = SettingError


def _settings(environ: Mapping[str, str]) -> dict[str, Any]:
    """EmbedderConfig's fields as `environ` sets them."""
    shared_dir = env_str("DOCDB_EMBEDDER_SHARED_DIR", environ)
    return {
        "model": env_str("DOCDB_EMBEDDER_MODEL", environ),
        "model_revision": env_str("DOCDB_EMBEDDER_MODEL_REVISION", environ),
        "device": env_str("DOCDB_EMBEDDER_DEVICE", environ),
        "dtype": env_str("DOCDB_EMBEDDER_DTYPE", environ),
        "image_backend": env_str("DOCDB_EMBEDDER_IMAGE_BACKEND", environ),
        "longest_edge": env_int("DOCDB_EMBEDDER_LONGEST_EDGE", environ),
        "compile": env_str("DOCDB_EMBEDDER_COMPILE", environ),
        "query_dtype": env_str("DOCDB_EMBEDDER_QUERY_DTYPE", environ),
        "host": env_str("DOCDB_EMBEDDER_HOST", environ),
        "port": env_int("DOCDB_EMBEDDER_PORT", environ),
        "api_keys": _api_keys(environ),
        "batch_size": env_int("DOCDB_EMBEDDER_BATCH_SIZE", environ) or None,
        "batch_wait_ms": env_int("DOCDB_EMBEDDER_BATCH_WAIT_MS", environ),
        "max_inputs": env_int("DOCDB_EMBEDDER_MAX_INPUTS", environ),
        "max_query_tokens": env_int("DOCDB_EMBEDDER_MAX_QUERY_TOKENS", environ),
        "recent_pages": env_int("DOCDB_EMBEDDER_RECENT_PAGES", environ),
        "recent_queries": env_int("DOCDB_EMBEDDER_RECENT_QUERIES", environ),
        "cache_dir": Path(
            env_str("DOCDB_EMBEDDER_CACHE_DIR", environ) or data_dir(environ) / "models"
        ),
        "workers": env_int("DOCDB_EMBEDDER_WORKERS", environ) or None,
        "front": env_bool("DOCDB_EMBEDDER_FRONT", environ),
        "shared_dir": Path(shared_dir) if shared_dir else None,
        "test_delay_ms": env_int("DOCDB_EMBEDDER_TEST_DELAY_MS", environ),
    }


def _api_keys(environ: Mapping[str, str]) -> tuple[str, ...]:
    """The keys set for the embedder, else the Weaviate key set in the environment, which Weaviate
    forwards: not the table's default Weaviate key, so that with neither set the embedder asks for
    no key at all."""
    weaviate_key = environ.get("DOCDB_WEAVIATE_API_KEY", "").strip()
    keys = env_list("DOCDB_EMBEDDER_API_KEYS", environ)
    return tuple(keys or ([weaviate_key] if weaviate_key else []))


# What an empty environment reads: the table's defaults.
_DEFAULTS = _settings({})


@dataclass(frozen=True)
class EmbedderConfig:
    model: str = _DEFAULTS["model"]
    # The hub revision downloaded when `model` is a hub id.
    model_revision: str = _DEFAULTS["model_revision"]
    device: str = _DEFAULTS["device"]
    dtype: str = _DEFAULTS["dtype"]
    image_backend: str = _DEFAULTS["image_backend"]
    longest_edge: int = _DEFAULTS["longest_edge"]
    # torch.compile mode of the forward pass on CUDA (model.py, COMPILE_MODES).
    compile: str = _DEFAULTS["compile"]
    # int8: queries through a copy of the text model with int8 linear layers (CPU only).
    query_dtype: str = _DEFAULTS["query_dtype"]
    host: str = _DEFAULTS["host"]
    port: int = _DEFAULTS["port"]
    # Empty: no authentication.
    api_keys: tuple[str, ...] = _DEFAULTS["api_keys"]
    # None: the embedder picks for the device (DOCDB_EMBEDDER_BATCH_SIZE=0).
    batch_size: int | None = _DEFAULTS["batch_size"]
    batch_wait_ms: int = _DEFAULTS["batch_wait_ms"]
    max_inputs: int = _DEFAULTS["max_inputs"]
    max_query_tokens: int = _DEFAULTS["max_query_tokens"]
    recent_pages: int = _DEFAULTS["recent_pages"]
    recent_queries: int = _DEFAULTS["recent_queries"]
    cache_dir: Path = _DEFAULTS["cache_dir"]
    # None: as many as the device keeps busy (docdb/embedder/__main__.py, workers_resolve).
    workers: int | None = _DEFAULTS["workers"]
    # One HTTP front process handing inputs to `workers` model processes (front.py), instead of
    # `workers` processes that each serve HTTP and the model.
    front: bool = _DEFAULTS["front"]
    # Set by the parent process for its workers: where they share page embeddings (shared.py).
    shared_dir: Path | None = _DEFAULTS["shared_dir"]
    test_delay_ms: int = _DEFAULTS["test_delay_ms"]


def config_from_env(environ: Mapping[str, str]) -> EmbedderConfig:
    return EmbedderConfig(**_settings(environ))

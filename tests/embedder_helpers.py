"""Start the real embedder service as a subprocess, and make page images to send it.

Shared by every test that needs an embedder (Weaviate calls it at import and at search).
"""

import asyncio
import base64
import io
import os
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import requests
from PIL import Image, ImageDraw

from docdb.localstack import free_port

if TYPE_CHECKING:
    from docdb.embedder.model import Embedder

REPO_ROOT = Path(__file__).resolve().parents[1]
EMBED_PATH = "/v1/embeddings/embed"


@dataclass
class EmbedderProcess:
    url: str
    api_key: str
    log_path: Path
    process: subprocess.Popen[bytes]

    def embed(self, inputs: list[str], *, query: bool = False, **extra: object) -> list[np.ndarray]:
        """Post inputs and return one (n_tokens, dim) array per input; fails on any non-200."""
        response = self.post({"input": inputs, "is_search_query": query, **extra})
        assert response.status_code == 200, response.text
        return [np.asarray(vectors, dtype=np.float32) for vectors in response.json()["embeddings"]]

    def post(
        self,
        body: object = None,
        *,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> requests.Response:
        """POST to the embed endpoint: `body` as JSON or raw `data`; this process's key unless
        `headers` replace it."""
        sent = {"Authorization": f"Bearer {self.api_key}"} if headers is None else headers
        return requests.post(
            self.url + EMBED_PATH,
            json=body if data is None else None,
            data=data,
            headers={"Content-Type": "application/json", **sent},
            timeout=60,
        )

    def health(self) -> dict:
        response = requests.get(self.url + "/health", timeout=10)
        response.raise_for_status()
        return response.json()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def offline_env(**variables: str) -> dict[str, str]:
    """This process's environment for a `python -m docdb...` child: the checkout importable, the
    Hugging Face hub off (these machines cannot reach it), plus `variables`."""
    pythonpath = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": pythonpath, "HF_HUB_OFFLINE": "1", **variables}


def embedder_start(
    *,
    cache_dir: Path,
    log_path: Path,
    api_key: str = "test-embedder-key",
    env: dict[str, str] | None = None,
    timeout: float = 120,
) -> EmbedderProcess:
    """`python -m docdb.embedder` with the tiny random model on a free port, ready to serve;
    `env` adds or overrides DOCDB_EMBEDDER_* settings."""
    port = free_port()
    settings = {
        "DOCDB_EMBEDDER_MODEL": "tiny",
        "DOCDB_EMBEDDER_DEVICE": "cpu",
        "DOCDB_EMBEDDER_HOST": "127.0.0.1",
        "DOCDB_EMBEDDER_PORT": str(port),
        "DOCDB_EMBEDDER_API_KEYS": api_key,
        "DOCDB_EMBEDDER_CACHE_DIR": str(cache_dir),
    }
    process_env = offline_env(**{**settings, **(env or {})})
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "docdb.embedder"],
            cwd=REPO_ROOT,
            env=process_env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    embedder = EmbedderProcess(f"http://127.0.0.1:{port}", api_key, log_path, process)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the embedder exited with {process.returncode}:\n{embedder.log()}")
        try:
            embedder.health()
            return embedder
        except requests.ConnectionError:
            time.sleep(0.2)
    embedder.stop()
    raise RuntimeError(f"the embedder did not answer within {timeout} s:\n{embedder.log()}")


def tiny_as_served(cache_dir: Path) -> "Embedder":
    """The tiny model as the embedder service loads it with its default settings, to compare the
    service's vectors with: `auto` settings depend on the CPU (int8 queries where it has VNNI)."""
    from docdb.embedder.config import config_from_env
    from docdb.embedder.model import embedder_configured

    return embedder_configured(
        config_from_env(
            {
                "DOCDB_EMBEDDER_MODEL": "tiny",
                "DOCDB_EMBEDDER_DEVICE": "cpu",
                "DOCDB_EMBEDDER_CACHE_DIR": str(cache_dir),
            }
        )
    )


def page_image(text: str, size: tuple[int, int] = (1240, 1754)) -> Image.Image:
    """A white A4-shaped page (150 dpi) with a line of text and a box, like a scanned page."""
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    draw.text((120, 160), text, fill="black")
    draw.rectangle((120, 400, size[0] - 120, 700), outline="black", width=4)
    return image


def image_base64(image: Image.Image, image_format: str = "PNG") -> str:
    buffer = io.BytesIO()
    image.save(buffer, format=image_format)
    return base64.b64encode(buffer.getvalue()).decode()


def decompression_bomb_base64(side: int = 30_000) -> str:
    """A PNG whose header claims side x side pixels: Pillow refuses it before decoding."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00"))
        + chunk(b"IEND", b"")
    )
    return base64.b64encode(png).decode()


def maxsim(query: np.ndarray, page: np.ndarray) -> float:
    """Late-interaction score: each query vector's best match on the page, summed."""
    return float((query @ page.T).max(axis=1).sum())


T = TypeVar("T")


def coroutine_run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to its end, also when this thread already runs an event loop (the
    browser tests' Playwright leaves one)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()

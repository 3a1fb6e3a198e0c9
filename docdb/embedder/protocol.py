"""What goes over the wire: the Weaviate Embeddings protocol (`POST /v1/embeddings/embed`) and
DocDB's own calls.

Weaviate's `multi2multivec-weaviate` module posts page images (base64) at import and query texts
at search; each input comes back as a multi-vector (a list of 128-dim unit vectors).
"""

import base64
import binascii
import io
from collections.abc import Sequence
from typing import Any

import numpy as np
import orjson
from fastapi import HTTPException
from fastapi.exceptions import RequestValidationError
from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel, Field, ValidationError

# What Weaviate sends by default, and the checkpoint it names on the hub.
KNOWN_MODEL_NAMES = ("ModernVBERT/colmodernvbert", "ModernVBERT/colmodernvbert-merged")
# Formats a page image arrives in. Leaving out the rest keeps Pillow from, say, handing an EPS
# file to Ghostscript.
IMAGE_FORMATS = ("PNG", "JPEG", "WEBP", "TIFF", "BMP", "GIF")
# A layout is computed on a blank page of the asked size: bound what that may allocate.
MAX_LAYOUT_SIDE = 10_000
MAX_LAYOUT_PIXELS = 25_000_000


class EmbedRequest(BaseModel):
    input: list[str]
    is_search_query: bool = False
    model: str | None = None
    dimensions: int | None = None


class QueryTokensRequest(BaseModel):
    """DocDB's own call (not Weaviate's): a query's vectors with the token each stands for."""

    input: str = Field(min_length=1, max_length=2000)


class ImageLayoutRequest(BaseModel):
    """DocDB's own call: where a page of this size puts its image tokens."""

    width: int = Field(ge=1, le=MAX_LAYOUT_SIDE)
    height: int = Field(ge=1, le=MAX_LAYOUT_SIDE)


def embed_request_parse(body: bytes) -> EmbedRequest:
    """Weaviate's module posts JSON without a Content-Type header, so the body is parsed here
    whatever the header says, rather than by FastAPI (which then refuses it with a 422)."""
    try:
        return EmbedRequest.model_validate_json(body)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**error, "loc": ("body", *error["loc"])} for error in exc.errors()]
        ) from exc


def image_decode(text: str, index: int) -> Image.Image:
    """A base64 image (plain or a `data:image/...;base64,` URL) as RGB; 400/413 when unusable."""
    with image_open(image_bytes(text, index), index) as image:
        return image_rgb(image, index)


def image_bytes(text: str, index: int) -> bytes:
    """The file a base64 image (plain or a `data:image/...;base64,` URL) holds; 400 when it is
    not base64."""
    payload = text
    if text.startswith("data:"):
        header, _, payload = text.partition(",")
        if not header.endswith(";base64"):
            raise HTTPException(400, f"input[{index}] is a data URL that is not base64-encoded.")
    try:
        return base64.b64decode("".join(payload.split()), validate=True)
    except (binascii.Error, ValueError):
        raise HTTPException(400, f"input[{index}] is not valid base64.") from None


def image_open(data: bytes, index: int) -> Image.Image:
    """An image file opened, its header read and its size checked, its pixels not yet decoded;
    400/413 when unusable."""
    try:
        return Image.open(io.BytesIO(data), formats=IMAGE_FORMATS)
    except Image.DecompressionBombError as exc:
        raise HTTPException(413, f"input[{index}] is too large an image: {exc}") from None
    except UnidentifiedImageError:
        raise HTTPException(
            400, f"input[{index}] is not a {', '.join(IMAGE_FORMATS)} image."
        ) from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise HTTPException(400, f"input[{index}] is a broken image: {exc}") from None


def image_rgb(image: Image.Image, index: int) -> Image.Image:
    """An opened image's pixels, decoded, as RGB; 400/413 when unusable."""
    try:
        return image.convert("RGB")
    except Image.DecompressionBombError as exc:
        raise HTTPException(413, f"input[{index}] is too large an image: {exc}") from None
    except (OSError, SyntaxError, ValueError) as exc:
        # Pillow reports broken files with any of these.
        raise HTTPException(400, f"input[{index}] is a broken image: {exc}") from None


def embed_response_json(vectors: Sequence[np.ndarray], metadata: dict[str, Any]) -> bytes:
    # orjson writes float32 arrays directly, in their shortest exact form: 20x faster than
    # json.dumps over lists and half the bytes, which decides throughput on a GPU.
    return orjson.dumps(
        {"embeddings": vectors, "metadata": metadata}, option=orjson.OPT_SERIALIZE_NUMPY
    )

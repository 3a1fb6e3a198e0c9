"""Images people search with: read and checked, embedded once, kept a while (`QueryImage`)."""

import hashlib
import io
from datetime import timedelta

import numpy as np
from django.conf import settings
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.utils import timezone
from PIL import Image, ImageOps, UnidentifiedImageError

from docdb import pdf
from docdb.embedder_client import EmbedderError, EmbedderRefused, images_embed
from docdb.search.models import QueryImage
from docdb.search.services import QueryRejected, SearchUnavailable

IMAGE_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF")
MAX_BYTES = 20 * 1024 * 1024
# A phone photo is 12-50 megapixels; past this a file is more likely a decompression bomb.
MAX_PIXELS = 64_000_000
# A query image is embedded at most this large: on an A4 page 5 tiles instead of 13, ~3x faster
# on a CPU, where a person waits for it (docs/benchmarks.md); a screenshot or a photo of a page
# shows its layout and large print at this size.
LONGEST_EDGE = 1024
KEEP = timedelta(days=7)
KEEP_PER_PERSON = 50


def query_image_create(*, owner: User, data: bytes) -> QueryImage:
    """The person's search image for this file: read, embedded as a page is, and stored; the
    same file again gives the stored one.

    Raises QueryRejected (the file cannot be searched with, the message says why) and
    SearchUnavailable (the embedder did not answer).
    """
    if not data:
        raise QueryRejected("The file is empty.")
    if len(data) > MAX_BYTES:
        raise QueryRejected(
            f"The image is {len(data) / 1024 / 1024:.1f} MB; "
            f"images up to {MAX_BYTES // 1024 // 1024} MB can be searched with."
        )
    sha256 = hashlib.sha256(data).hexdigest()
    earlier = QueryImage.objects.filter(owner=owner, sha256=sha256).first()
    if earlier is not None:
        return earlier
    image = _image_read(data)
    jpeg = pdf.image_jpeg_bytes(image, quality=settings.PAGE_JPEG_QUALITY)
    # On Weaviate Cloud there is no embedder of ours: Weaviate embeds the image at each search.
    rows = None if settings.WEAVIATE_CLOUD else _embedded(jpeg)
    _expire(owner)
    try:
        with transaction.atomic():
            return QueryImage.objects.create(
                owner=owner,
                sha256=sha256,
                jpeg=jpeg,
                vectors=b"" if rows is None else rows.astype("<f4").tobytes(),
                dimensions=0 if rows is None else rows.shape[1],
                width=image.width,
                height=image.height,
            )
    except IntegrityError:
        # The same file sent twice at once: the first one stored serves both.
        return QueryImage.objects.get(owner=owner, sha256=sha256)


def _image_read(data: bytes) -> Image.Image:
    """The image upright, on white where it was transparent, at most LONGEST_EDGE."""
    try:
        with Image.open(io.BytesIO(data), formats=IMAGE_FORMATS) as image:
            if image.width * image.height > MAX_PIXELS:
                raise QueryRejected(
                    f"The image is {image.width} x {image.height} pixels; "
                    f"images up to {MAX_PIXELS // 1_000_000} megapixels can be searched with."
                )
            # Phones store photos sideways with an EXIF note of which way is up.
            upright = ImageOps.exif_transpose(image)
            rgba = upright.convert("RGBA")
    except UnidentifiedImageError:
        raise QueryRejected(
            f"This file is not an image DocDB can read: use {', '.join(IMAGE_FORMATS)}."
        ) from None
    except Image.DecompressionBombError:
        raise QueryRejected("The image is too large to be searched with.") from None
    except (OSError, SyntaxError, ValueError) as exc:
        # Pillow reports broken files with any of these.
        raise QueryRejected(f"The image is damaged and cannot be read ({exc}).") from None
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    rgb = Image.alpha_composite(white, rgba).convert("RGB")
    rgb.thumbnail((LONGEST_EDGE, LONGEST_EDGE), Image.Resampling.LANCZOS, reducing_gap=3.0)
    return rgb


def _embedded(jpeg: bytes) -> np.ndarray:
    try:
        (vectors,) = images_embed([jpeg])
    except EmbedderRefused as exc:
        raise QueryRejected(f"The model refused it: {exc.detail}") from exc
    except EmbedderError as exc:
        raise SearchUnavailable(
            "Search by image is unavailable right now: the embedder did not answer. "
            "Try again in a moment."
        ) from exc
    return np.asarray(vectors, dtype=np.float32)


def _expire(owner: User) -> None:
    QueryImage.objects.filter(created_at__lt=timezone.now() - KEEP).delete()
    stale = (
        QueryImage.objects.filter(owner=owner)
        .order_by("-created_at")
        .values_list("pk", flat=True)[KEEP_PER_PERSON - 1 :]
    )
    QueryImage.objects.filter(pk__in=list(stale)).delete()

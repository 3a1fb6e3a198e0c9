import uuid

import numpy as np
from django.conf import settings
from django.db import models


class QueryImage(models.Model):
    """An image a person searched with (a screenshot, a photo of a printout).

    Its multi-vector is kept so that "More results", the back button and a copied link search
    again without embedding it again (on a CPU that takes as long as a page); the JPEG it was
    embedded from is kept too, to show beside the results and for Weaviate Cloud, which embeds
    the image itself at each search. Old ones are deleted as new ones come
    (`search.query_images`).
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="query_images"
    )
    # Of the file as uploaded: the same image twice is embedded once.
    sha256 = models.CharField(max_length=64)
    jpeg = models.BinaryField()
    # The multi-vector as little-endian float32 rows of `dimensions` values; empty where
    # Weaviate embeds the image (Cloud).
    vectors = models.BinaryField(blank=True, default=b"")
    dimensions = models.PositiveSmallIntegerField(default=0)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            # An upload looks for the person's earlier search with the same image.
            models.UniqueConstraint(fields=["owner", "sha256"], name="queryimage_owner_sha_uniq"),
        ]
        indexes = [
            # Expiry deletes the oldest.
            models.Index(fields=["created_at"], name="queryimage_created_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.owner} / {self.sha256[:12]}"

    def multivector(self) -> list[list[float]] | None:
        """The image's multi-vector, or None where Weaviate embeds it at each search."""
        if not self.dimensions:
            return None
        rows = np.frombuffer(bytes(self.vectors), dtype="<f4").reshape(-1, self.dimensions)
        return rows.tolist()  # type: ignore[no-any-return]

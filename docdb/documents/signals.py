"""Each person has a personal library from the moment they exist: where their uploads go, and
what every search of theirs spans at least."""

from typing import Any

from django.conf import settings
from django.db.models.signals import post_save
from django.dispatch import receiver

from docdb.documents.models import Library


@receiver(post_save, sender=settings.AUTH_USER_MODEL)
def personal_library_make(sender: Any, instance: Any, created: bool, **kwargs: Any) -> None:
    # Loaded fixtures (raw) carry their own rows.
    if created and not kwargs.get("raw"):
        Library.objects.personal(instance)

from django.apps import AppConfig


class DocumentsConfig(AppConfig):
    name = "docdb.documents"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from docdb.documents import (
            checks,  # noqa: F401  (registers the start-up checks)
            signals,  # noqa: F401  (a personal library for each person)
        )

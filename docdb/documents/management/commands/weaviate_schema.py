import json
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from docdb.documents.models import Document, Status
from docdb.documents.reimport import libraries_backfill
from docdb.weaviate_store import (
    SchemaMismatch,
    WeaviateUnavailable,
    client_close,
    collection_describe,
    collection_ensure,
    collection_recreate,
)


class Command(BaseCommand):
    help = (
        "Create the Weaviate page collection, or check that it matches the settings; on a "
        "collection made before libraries, add the library to its pages (nothing is embedded)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--wait",
            type=int,
            default=0,
            metavar="SECONDS",
            help="Wait up to this long for Weaviate to come up (used at start-up).",
        )
        parser.add_argument(
            "--check", action="store_true", help="Only describe the collection; change nothing."
        )
        parser.add_argument(
            "--recreate",
            action="store_true",
            help="Drop the collection and create it anew (every page must then be re-indexed).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        deadline = time.monotonic() + options["wait"]
        while True:
            try:
                description = self._run(options)
                break
            except WeaviateUnavailable as exc:
                if time.monotonic() >= deadline:
                    raise CommandError(str(exc)) from exc
                time.sleep(2)
            except SchemaMismatch as exc:
                raise CommandError(str(exc)) from exc
            finally:
                client_close()
        self.stdout.write(json.dumps(description, indent=2, default=str))
        if description.get("note"):
            self.stderr.write(description["note"])
        if description.get("created"):
            self._reindex_hint()

    def _reindex_hint(self) -> None:
        # A new collection (a new Weaviate, a switch to or from Weaviate Cloud, --recreate) holds
        # none of the pages that the database says are indexed: search would silently miss them.
        indexed = Document.objects.filter(status=Status.READY).count()
        if indexed:
            self.stderr.write(
                f"The collection is new and empty, but {indexed} document(s) were indexed "
                "before (into another Weaviate, or the collection just recreated): search finds "
                "none of their pages until `python manage.py reindex` imports them again."
            )

    def _run(self, options: dict[str, Any]) -> dict[str, Any]:
        if options["check"]:
            return collection_describe()
        if options["recreate"]:
            return collection_recreate()
        description = collection_ensure()
        # An upgraded install: pages indexed before libraries get theirs (done once; later
        # starts find none missing).
        backfilled = libraries_backfill()
        return {**description, "libraries_backfilled": backfilled} if backfilled else description

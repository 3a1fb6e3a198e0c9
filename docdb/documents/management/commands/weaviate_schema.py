import json
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from docdb.weaviate_store import (
    SchemaMismatch,
    WeaviateUnavailable,
    client_close,
    collection_describe,
    collection_ensure,
    collection_recreate,
)


class Command(BaseCommand):
    help = "Create the Weaviate page collection, or check that it matches the settings."

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

    def _run(self, options: dict[str, Any]) -> dict[str, Any]:
        if options["check"]:
            return collection_describe()
        if options["recreate"]:
            return collection_recreate()
        return collection_ensure()

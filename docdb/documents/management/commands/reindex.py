import uuid
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from docdb.documents.models import Document, Status
from docdb.documents.reimport import document_reimport_queue
from docdb.documents.services import document_reindex


def _ids_parse(raw_ids: list[str]) -> list[uuid.UUID]:
    try:
        return [uuid.UUID(raw) for raw in raw_ids]
    except ValueError as exc:
        raise CommandError(f"Not a document id: {exc}") from exc


class Command(BaseCommand):
    help = (
        "Queue documents to be processed and imported into Weaviate again (all finished ones, "
        "or those given). With --import-only, only re-import the stored page images."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("document_ids", nargs="*", help="Document ids; none means all.")
        parser.add_argument(
            "--import-only",
            action="store_true",
            help="Re-import ready documents into Weaviate from their stored page images and "
            "text, without rendering the PDFs again (after a collection was recreated, say).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        documents = Document.objects.filter(status__in=[Status.READY, Status.FAILED])
        if options["document_ids"]:
            ids = _ids_parse(options["document_ids"])
            unknown = set(ids) - set(
                Document.objects.filter(id__in=ids).values_list("id", flat=True)
            )
            if unknown:
                raise CommandError(f"No such document: {', '.join(sorted(map(str, unknown)))}")
            documents = Document.objects.filter(id__in=ids)
        if options["import_only"]:
            with transaction.atomic():
                queued = sum(document_reimport_queue(document=d) is not None for d in documents)
            what = "re-import into Weaviate"
        else:
            queued = sum(document_reindex(document=document) for document in documents)
            what = "re-indexing"
        skipped = len(documents) - queued
        self.stdout.write(f"Queued {queued} document(s) for {what}.")
        if skipped:
            reason = "not ready" if options["import_only"] else "already in the pipeline"
            self.stdout.write(f"Skipped {skipped} document(s): {reason}.")

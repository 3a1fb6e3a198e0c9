from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from docdb.documents.models import Document, Status
from docdb.documents.services import document_reindex


class Command(BaseCommand):
    help = "Queue documents to be imported into Weaviate again (all finished ones, or those given)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("document_ids", nargs="*", help="Document ids; none means all.")

    def handle(self, *args: Any, **options: Any) -> None:
        documents = Document.objects.filter(status__in=[Status.READY, Status.FAILED])
        if options["document_ids"]:
            documents = documents.filter(id__in=options["document_ids"])
        queued = sum(document_reindex(document=document) for document in documents)
        self.stdout.write(f"Queued {queued} document(s) for re-indexing.")

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from docdb.ops.reconcile import ConsistencyReport, consistency_check, consistency_repair
from docdb.weaviate_store import WeaviateUnavailable, client_close


class Command(BaseCommand):
    help = (
        "Compare every document's pages in the database, its objects in Weaviate and its files "
        "on disk. Exits with status 1 when they disagree; --fix repairs what it can first."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--fix",
            action="store_true",
            help="Re-import missing objects, restore missing page images and thumbnails, delete "
            "objects that should not be there, put objects of another library back in their "
            "document's.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            self._run(fix=options["fix"])
        except WeaviateUnavailable as exc:
            raise CommandError(str(exc)) from exc
        finally:
            client_close()

    def _run(self, *, fix: bool) -> None:
        report = consistency_check()
        self._report_write(report)
        if report.consistent:
            return
        if not fix:
            raise CommandError("Inconsistencies found; run with --fix to repair them.")
        done, impossible = consistency_repair(report)
        for line in done:
            self.stdout.write(self.style.SUCCESS(f"  fixed  {line}"))
        for line in impossible:
            self.stdout.write(self.style.ERROR(f"  not fixed  {line}"))
        after = consistency_check()
        if not after.consistent:
            self._report_write(after)
            raise CommandError("Some inconsistencies remain (see above).")
        self.stdout.write(self.style.SUCCESS("Repaired: everything agrees now."))

    def _report_write(self, report: ConsistencyReport) -> None:
        for check in report.problems:
            self.stdout.write(
                f"{check.title} ({check.document_id}, {check.owner}, {check.status}): "
                f"{check.pages_in_db} pages in the database, "
                f"{check.objects_in_weaviate} objects in Weaviate"
            )
            for problem in check.problems:
                self.stdout.write(self.style.WARNING(f"  - {problem}"))
        for document_id, count in report.orphans.items():
            self.stdout.write(
                self.style.WARNING(
                    f"{count} objects in Weaviate of a deleted document {document_id}"
                )
            )
        self.stdout.write(
            f"{report.checked} documents checked, {report.in_progress} in the pipeline, "
            f"{len(report.problems)} inconsistent, "
            f"{sum(report.orphans.values())} orphaned objects."
        )

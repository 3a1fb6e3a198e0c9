import sys
import time
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.core.files.uploadedfile import UploadedFile
from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from docdb.documents.libraries import ChangeRefused, library_for_upload
from docdb.documents.models import Document, Library, Status
from docdb.documents.services import UploadRejected, document_upload

POLL_SECONDS = 1.0


def _pdf_files(paths: list[str]) -> tuple[list[Path], list[str]]:
    """The files named, and every *.pdf under the folders named (sorted, so runs repeat)."""
    files: list[Path] = []
    missing: list[str] = []
    for raw in paths:
        path = Path(raw).expanduser()
        if path.is_dir():
            found = (p for p in path.rglob("*") if p.is_file() and p.suffix.lower() == ".pdf")
            files.extend(sorted(found))
        elif path.is_file():
            files.append(path)
        else:
            missing.append(f"{raw}: no such file or folder.")
    return files, missing


def _import_one(owner: User, path: Path, library: Library) -> Document:
    with path.open("rb") as handle:
        upload = UploadedFile(
            file=handle,
            name=str(path),
            content_type="application/pdf",
            size=path.stat().st_size,
        )
        return document_upload(owner=owner, upload=upload, library=library)


class Command(BaseCommand):
    help = (
        "Import PDFs for one person, into their personal library or one they edit: files, or "
        "folders searched recursively for *.pdf. Prints a "
        "summary (imported, duplicates, failed with reasons); exits with status 1 if any failed."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("paths", nargs="+", metavar="PATH", help="PDF files or folders.")
        parser.add_argument("--owner", required=True, help="Username of who uploads them.")
        parser.add_argument(
            "--library",
            type=int,
            metavar="ID",
            help="The library to import into (the owner must be its editor or owner); default: "
            "the owner's personal library.",
        )
        parser.add_argument(
            "--wait",
            action="store_true",
            help="Wait until every imported document is processed; count those that fail.",
        )
        parser.add_argument(
            "--timeout",
            type=int,
            default=6 * 3600,
            metavar="SECONDS",
            help="With --wait: give up waiting after this long (default 6 hours).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            owner = get_user_model().objects.get(username=options["owner"])
        except get_user_model().DoesNotExist as exc:
            raise CommandError(f"No user named {options['owner']!r}.") from exc
        try:
            library = library_for_upload(user=owner, library_id=options["library"])
        except Library.DoesNotExist as exc:
            raise CommandError(f"{owner} is not a member of library {options['library']}.") from exc
        except ChangeRefused as exc:
            raise CommandError(str(exc)) from exc
        files, failed = _pdf_files(options["paths"])
        imported: list[Document] = []
        duplicates: list[str] = []
        for path in tqdm(files, desc="Importing", unit="file", file=sys.stderr):
            try:
                imported.append(_import_one(owner, path, library))
            except UploadRejected as exc:
                (duplicates if exc.duplicate_of else failed).append(exc.reason)
            except OSError as exc:
                failed.append(f"{path}: {exc.strerror or exc}")
        if options["wait"] and imported:
            failed += self._wait(imported, timeout=options["timeout"])
        self._summary(imported, duplicates, failed)
        if failed:
            raise CommandError(f"{len(failed)} file(s) failed.", returncode=1)

    def _wait(self, documents: list[Document], *, timeout: int) -> list[str]:
        """Follow the documents through the pipeline with a progress bar over their pages."""
        ids = [document.id for document in documents]
        deadline = time.monotonic() + timeout
        with tqdm(desc="Processing", unit="page", file=sys.stderr) as bar:
            while True:
                current = list(Document.objects.filter(id__in=ids))
                bar.total = sum(document.pages_total for document in current)
                bar.n = sum(
                    document.pages_total if document.is_terminal else document.pages_done
                    for document in current
                )
                bar.refresh()
                if all(d.is_terminal for d in current) or time.monotonic() >= deadline:
                    break
                time.sleep(POLL_SECONDS)
        failures = []
        for document in current:
            if document.status == Status.FAILED:
                failures.append(f"{document.original_name}: {document.error}")
            elif not document.is_terminal:
                failures.append(
                    f"{document.original_name}: still {document.status} after {timeout} s."
                )
        return failures

    def _summary(self, imported: list[Document], duplicates: list[str], failed: list[str]) -> None:
        self.stdout.write(
            f"Imported: {len(imported)}   Duplicates: {len(duplicates)}   Failed: {len(failed)}"
        )
        for reason in duplicates:
            self.stdout.write(f"  duplicate  {reason}")
        for reason in failed:
            self.stdout.write(self.style.ERROR(f"  failed     {reason}"))

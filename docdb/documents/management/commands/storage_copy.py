from pathlib import Path
from typing import Any

from django.core.files.storage import default_storage
from django.core.management.base import BaseCommand, CommandError, CommandParser

from docdb.documents.files import document_prefix, file_store
from docdb.documents.models import Document


class Command(BaseCommand):
    help = (
        "Copy every document's files (original, page images, thumbnails) from a media folder "
        "of a single-machine install into the configured storage (an S3 bucket with "
        "DOCDB_STORAGE=s3). Files already there with the same size are skipped, so it can run "
        "again after an interruption."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "source", type=Path, help="The old DOCDB_MEDIA_DIR (by default data/media)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        source: Path = options["source"].resolve()
        if not (source / "documents").is_dir():
            raise CommandError(f"{source} holds no documents/ folder: is it DOCDB_MEDIA_DIR?")
        copied = skipped = size = 0
        missing = []
        # Only the files of documents in the database: what else lies in the folder is left.
        for document_id in Document.objects.values_list("id", flat=True).iterator():
            prefix = document_prefix(document_id)
            folder = source / prefix
            if not folder.is_dir():
                missing.append(str(document_id))
                continue
            for path in sorted(p for p in folder.rglob("*") if p.is_file()):
                name = path.relative_to(source).as_posix()
                if path.name.startswith("."):
                    continue  # a temporary file of an interrupted write
                stored = default_storage.exists(name) and default_storage.size(name)
                if stored == path.stat().st_size:
                    skipped += 1
                    continue
                file_store(name, path)
                copied += 1
                size += path.stat().st_size
        self.stdout.write(
            f"Copied {copied} file(s) ({size / 1024 / 1024:.1f} MiB); {skipped} were there already."
        )
        if missing:
            raise CommandError(
                f"No files in {source} for {len(missing)} document(s): {', '.join(missing[:10])}"
            )

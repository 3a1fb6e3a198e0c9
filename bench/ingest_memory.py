"""Peak memory of ingesting one PDF, the way a worker does it, range by range.

Runs the pipeline in this process against the configured Redis/Weaviate/embedder (start them
with `DOCDB_EMBEDDER_MODEL=tiny make run` in another terminal) and prints the peak resident
memory of this process and of the largest poppler child, with pages per second.

    .venv/bin/python bench/ingest_memory.py ../shared/corpus/real/freeculture.pdf
"""

import argparse
import os
import resource
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "docdb.settings")

import django

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.core.files import File  # noqa: E402

from docdb.documents.models import Document  # noqa: E402
from docdb.documents.services import (  # noqa: E402
    document_delete,
    document_ingest,
    document_range_ingest,
    document_start,
)


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pdf", type=Path)
    parser.add_argument("--owner", default="bench")
    parser.add_argument("--keep", action="store_true", help="keep the document afterwards")
    parser.add_argument(
        "--pages", type=int, default=0, help="stop after this many pages (0: the whole file)"
    )
    args = parser.parse_args()

    owner, _ = get_user_model().objects.get_or_create(username=args.owner)
    document = Document(
        owner=owner,
        title=args.pdf.stem,
        original_name=args.pdf.name,
        # One document per owner and checksum (a database constraint): each run its own.
        sha256=f"bench-{uuid.uuid4().hex}",
    )
    with args.pdf.open("rb") as handle:
        document.file.save("original.pdf", File(handle), save=True)
    baseline = _status_kib("VmRSS")
    started = time.monotonic()
    if args.pages:
        first = document_start(document_id=document.id)
        while first is not None and first <= args.pages:
            first = document_range_ingest(document_id=document.id, first=first)
    else:
        document_ingest(document_id=document.id)
    seconds = time.monotonic() - started
    document.refresh_from_db()
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(f"file:                 {args.pdf.name}")
    print(f"status:               {document.status} {document.error}")
    print(f"pages:                {document.pages_done}/{document.pages_total}")
    print(f"seconds:              {seconds:.1f} ({document.pages_done / seconds:.2f} pages/s)")
    print(f"RSS before:           {baseline / 1024:.0f} MiB")
    print(f"peak RSS (process):   {_status_kib('VmHWM') / 1024:.0f} MiB")
    print(f"peak RSS (poppler):   {children / 1024:.0f} MiB")
    if not args.keep:
        document_delete(document=document)


if __name__ == "__main__":
    main()

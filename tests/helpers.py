"""Small things many tests need: users, generated PDFs, waiting for the pipeline."""

import hashlib
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser
from django.core.files import File

from docdb.documents.models import Document, Library, Status
from tests.pdf_factory import pdf_make

if TYPE_CHECKING:
    from playwright.sync_api import Page

PASSWORD = "correct horse battery staple"

# Words that appear on exactly one page each, so a keyword search must rank that page first.
PAGE_TEXTS = [
    ["Quarterly report", "Revenue grew in every region."],
    ["Methods", "We measured the tensile strength of bamboo fibres."],
    ["Results", "The xylophone calibration phrase appears only here."],
    ["Discussion", "Bamboo outperformed steel per unit of weight."],
    ["Appendix", "Tables and raw measurements follow."],
]
UNIQUE_PHRASE = "xylophone calibration"
UNIQUE_PAGE = 3


def user_make(username: str | None = None) -> AbstractUser:
    name = username or f"user-{uuid.uuid4().hex[:8]}"
    return get_user_model().objects.create_user(name, password=PASSWORD)  # type: ignore[no-any-return]


def report_pdf(directory: Path, name: str = "report.pdf", *, salt: str = "") -> Path:
    """The five-page test report; `salt` makes a copy with a different SHA-256."""
    pages = [list(lines) for lines in PAGE_TEXTS]
    if salt:
        pages[-1].append(f"copy {salt}")
    return pdf_make(directory / name, pages=pages, title="Report")


def document_wait(document_id: uuid.UUID, *, timeout: float = 240) -> Document:
    """Poll until the document is ready or failed; fail loudly with its state otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        document = Document.objects.get(id=document_id)
        if document.status in (Status.READY, Status.FAILED):
            return document
        if time.monotonic() > deadline:
            raise AssertionError(
                f"document {document_id} still {document.status} "
                f"({document.pages_done}/{document.pages_total}) after {timeout}s"
            )
        time.sleep(0.5)


def document_stored(owner: AbstractUser, path: Path) -> Document:
    """A stored document that nothing was queued for: the test drives its pipeline."""
    document = Document(
        owner=owner,
        title=path.stem,
        original_name=path.name,
        sha256=uuid.uuid4().hex,
        status=Status.QUEUED,
    )
    with path.open("rb") as handle:
        document.file.save("original.pdf", File(handle), save=True)
    return document


def document_row(
    library: Library, owner: AbstractUser, title: str, *, status: Status = Status.QUEUED
) -> Document:
    """A document as a row only, for what needs no pipeline, no file and no search index."""
    return Document.objects.create(
        owner=owner,
        library=library,
        title=title,
        original_name=f"{title}.pdf",
        sha256=hashlib.sha256(f"{library.pk}{title}".encode()).hexdigest(),
        status=status,
    )


def page_wait(page: "Page", predicate: str, *, timeout: float = 30) -> None:
    """Wait until the JavaScript expression is true in the page. Playwright's wait_for_function
    runs it with eval(), which the Content-Security-Policy forbids; page.evaluate goes through
    the DevTools protocol, outside the policy."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(predicate):
        if time.monotonic() > deadline:
            raise AssertionError(f"never true within {timeout}s: {predicate}")
        page.wait_for_timeout(100)

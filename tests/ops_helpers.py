"""Documents in a known state for the admin, operations and command tests."""

import time
import uuid
from pathlib import Path

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser
from django.core.files.uploadedfile import SimpleUploadedFile

from docdb.documents.models import RUN_UNFINISHED, Document, PipelineRun, Status
from docdb.documents.services import document_upload
from tests.helpers import PASSWORD, document_wait
from tests.pdf_factory import pdf_make


def staff_make() -> AbstractUser:
    return get_user_model().objects.create_superuser(  # type: ignore[no-any-return]
        f"staff-{uuid.uuid4().hex[:8]}", password=PASSWORD
    )


def small_pdf(
    directory: Path, name: str = "small.pdf", *, pages: int = 3, **kwargs: object
) -> Path:
    """A PDF of `pages` pages whose text is unique to this call (so it is never a duplicate)."""
    token = uuid.uuid4().hex
    lines = [[f"{name} page {n}", f"token {token}"] for n in range(1, pages + 1)]
    return pdf_make(directory / name, pages=lines, **kwargs)  # type: ignore[arg-type]


def document_add(owner: AbstractUser, path: Path) -> Document:
    upload = SimpleUploadedFile(path.name, path.read_bytes(), content_type="application/pdf")
    return document_upload(owner=owner, upload=upload)  # type: ignore[arg-type]


def document_ready(owner: AbstractUser, directory: Path, name: str = "small.pdf") -> Document:
    document = document_wait(document_add(owner, small_pdf(directory, name)).id)
    assert document.status == Status.READY, document.error
    return document


def run_wait(run_id: int, *, timeout: float = 240) -> PipelineRun:
    deadline = time.monotonic() + timeout
    while True:
        run = PipelineRun.objects.get(id=run_id)
        if run.state not in RUN_UNFINISHED:
            return run
        if time.monotonic() > deadline:
            raise AssertionError(f"run {run.task_id} still {run.state} after {timeout}s")
        time.sleep(0.3)

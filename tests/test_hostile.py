"""Every hostile file of the corpus ends in a clear state through the real pipeline."""

from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from docdb.documents.models import Document, Page, Status
from docdb.documents.services import UploadRejected, document_upload
from docdb.weaviate_store import pages_count
from tests.conftest import TEST_PDF_MAX_PAGES, Stack
from tests.helpers import document_wait, user_make

pytestmark = [pytest.mark.corpus, pytest.mark.timeout(900)]

# What a person is told, by file; files not listed must become ready.
REJECTED_AT_UPLOAD = {
    "zero-bytes.pdf": "the file is empty.",
    "22060_A1_01_Plans.pdf": "the file is empty.",
    "html-named-pdf.pdf": "this file is not a PDF.",
    "png-named-pdf.pdf": "this file is not a PDF.",
}
FAILED_WITH = {
    "issue3371.pdf": "This PDF is password-protected.",
    "truncated-tracemonkey.pdf": "The file is damaged and could not be read.",
    "many-pages.pdf": f"This PDF has 3000 pages; the limit is {TEST_PDF_MAX_PAGES}.",
}


def test_hostile_files_end_ready_or_failed_with_a_reason(live: Stack, corpus_dir: Path) -> None:
    owner = user_make()
    files = sorted((corpus_dir / "hostile").iterdir())
    assert len(files) >= 18
    documents: dict[str, Document] = {}
    for path in files:
        upload = SimpleUploadedFile(path.name, path.read_bytes(), content_type="application/pdf")
        try:
            documents[path.name] = document_upload(owner=owner, upload=upload)
        except UploadRejected as exc:
            assert exc.reason.endswith(REJECTED_AT_UPLOAD[path.name]), exc.reason
        else:
            assert path.name not in REJECTED_AT_UPLOAD
            # The stored name is generated; the given one (hostile here) is only displayed.
            assert documents[path.name].file.name.endswith("/original.pdf")
            assert documents[path.name].original_name == path.name

    assert set(REJECTED_AT_UPLOAD) | set(documents) == {path.name for path in files}
    for name, document in documents.items():
        document = document_wait(document.id, timeout=600)
        indexed = pages_count(owner_id=owner.pk, document_id=document.id)
        if name in FAILED_WITH:
            assert document.status == Status.FAILED, name
            assert document.error == FAILED_WITH[name]
            assert indexed == 0, f"{name} left pages in Weaviate"
            continue
        assert document.status == Status.READY, f"{name}: {document.error}"
        assert document.pages_done == document.pages_total >= 1
        assert indexed == document.pages_total == Page.objects.filter(document=document).count()
        for page in Page.objects.filter(document=document):
            assert page.image_path.is_file(), name
            assert page.width * page.height <= 2048 * 2048

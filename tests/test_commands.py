"""Management commands against the real services: import_pdfs, reconcile, reindex."""

import io
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from docdb.documents.models import Document, PipelineRun, RunKind, RunState, Status
from docdb.ops.reconcile import consistency_check
from docdb.weaviate_store import PageObject, pages_count, pages_delete_numbers, pages_upsert
from tests.conftest import REPO_DIR, Stack
from tests.helpers import document_wait, user_make
from tests.ops_helpers import document_ready, run_wait, small_pdf
from tests.pdf_factory import file_make_not_pdf

pytestmark = pytest.mark.timeout(600)


def _command(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_import_pdfs_imports_a_folder_recursively_and_exits_1_on_failures(
    live: Stack, tmp_path: Path
) -> None:
    owner = user_make()
    folder = tmp_path / "inbox"
    (folder / "sub" / "deeper").mkdir(parents=True)
    first = small_pdf(folder, "a.pdf", pages=2)
    small_pdf(folder / "sub", "B.PDF", pages=1)
    small_pdf(folder / "sub" / "deeper", "c.pdf", pages=2)
    small_pdf(folder / "sub", "locked.pdf", pages=1, user_password="secret")
    shutil.copy(first, folder / "sub" / "copy-of-a.pdf")
    file_make_not_pdf(folder / "fake.pdf")
    (folder / "notes.txt").write_text("not imported: not a .pdf name")

    # A real process, for the real exit status.
    result = subprocess.run(
        [
            *(sys.executable, "manage.py", "import_pdfs", str(folder), str(tmp_path / "no.pdf")),
            *("--owner", owner.username, "--wait", "--timeout", "300"),
        ],
        cwd=REPO_DIR,
        env=live.worker_env,
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    assert "Imported: 4   Duplicates: 1   Failed: 3" in result.stdout, result.stdout
    assert "copy-of-a.pdf: this file was already uploaded as “a”." in result.stdout
    assert "fake.pdf: this file is not a PDF." in result.stdout
    assert "no.pdf: no such file or folder." in result.stdout
    assert "locked.pdf: This PDF is password-protected" in result.stdout
    assert "Importing: 100%" in result.stderr and "Processing: 100%" in result.stderr
    documents = Document.objects.filter(owner=owner)
    assert sorted(documents.values_list("original_name", flat=True)) == [
        "B.PDF",
        "a.pdf",
        "c.pdf",
        "locked.pdf",
    ]
    assert documents.filter(status=Status.READY).count() == 3


def test_import_pdfs_succeeds_quietly_and_checks_the_owner(live: Stack, tmp_path: Path) -> None:
    owner = user_make()
    path = small_pdf(tmp_path, "one.pdf", pages=1)
    assert "Imported: 1   Duplicates: 0   Failed: 0" in _command(
        "import_pdfs", str(path), "--owner", owner.username
    )
    document = document_wait(Document.objects.get(owner=owner).id)
    assert document.status == Status.READY
    with pytest.raises(CommandError, match="No user named 'nobody'"):
        _command("import_pdfs", str(path), "--owner", "nobody")


def test_reconcile_finds_and_repairs_a_deleted_object_and_thumbnail(
    live: Stack, tmp_path: Path
) -> None:
    owner = user_make()
    document = document_ready(owner, tmp_path)
    other = document_ready(owner, tmp_path, "other.pdf")
    # Deliberate damage: one Weaviate object, one thumbnail, one page image of another
    # document, and objects of a document the database never heard of.
    pages_delete_numbers(document_id=document.id, numbers=[2])
    thumbnail = document.pages.get(number=3).thumbnail_path
    thumbnail.unlink()
    image = other.pages.get(number=1).image_path
    image.unlink()
    ghost = uuid.uuid4()
    pages_upsert(
        [
            PageObject(
                document_id=ghost,
                owner_id=owner.pk,
                library_id=other.library_id,
                title="ghost",
                file_name="ghost.pdf",
                page_number=1,
                text="",
                image_jpeg=other.pages.get(number=2).image_path.read_bytes(),
            )
        ]
    )

    out = io.StringIO()
    with pytest.raises(CommandError, match="run with --fix"):
        call_command("reconcile", stdout=out)
    report = out.getvalue()
    assert f"{document.title} ({document.id}" in report
    assert "pages missing from Weaviate: 2" in report
    assert "thumbnails missing: 3" in report
    assert "page images missing: 1" in report
    assert f"1 objects in Weaviate of a deleted document {ghost}" in report

    fixed = _command("reconcile", "--fix")
    assert "re-imported 1 pages into Weaviate" in fixed
    assert "restored page 3 thumbnail" in fixed
    assert f"“other” ({other.id}): restored page 1 image\n" in fixed
    assert f"deleted 1 of 1 orphaned objects of document {ghost}" in fixed
    assert "Repaired: everything agrees now." in fixed
    assert thumbnail.is_file() and image.is_file()
    assert pages_count(owner_id=owner.pk, document_id=document.id) == 3
    assert pages_count(document_id=ghost) == 0
    assert consistency_check().consistent
    assert "0 inconsistent, 0 orphaned objects." in _command("reconcile")


def test_reconcile_reports_what_it_cannot_repair(live: Stack, tmp_path: Path) -> None:
    document = document_ready(user_make(), tmp_path)
    document.pages.get(number=1).image_path.unlink()
    Path(document.file.path).unlink()
    out = io.StringIO()
    with pytest.raises(CommandError, match="Some inconsistencies remain"):
        call_command("reconcile", "--fix", stdout=out)
    assert "the original PDF is missing" in out.getvalue()
    assert "page 1: the page image and the original PDF are both missing" in out.getvalue()


def test_reindex_all_given_and_import_only(live: Stack, tmp_path: Path) -> None:
    owner = user_make()
    document = document_ready(owner, tmp_path)
    image = document.pages.get(number=1).image_path
    rendered_at = image.stat().st_mtime_ns
    pages_delete_numbers(document_id=document.id, numbers=[1, 2, 3])

    assert "Queued 1 document(s) for re-import into Weaviate." in _command(
        "reindex", "--import-only", str(document.id)
    )
    run = run_wait(PipelineRun.objects.get(kind=RunKind.REIMPORT).id)
    assert (run.state, run.summary) == (RunState.SUCCEEDED, "3 pages re-imported.")
    assert pages_count(owner_id=owner.pk, document_id=document.id) == 3
    assert image.stat().st_mtime_ns == rendered_at  # no page was rendered again

    assert "Queued 1 document(s) for re-indexing." in _command("reindex")
    document = document_wait(document.id)
    assert document.status == Status.READY
    assert PipelineRun.objects.filter(document=document, kind=RunKind.PROCESS).count() == 2

    with pytest.raises(CommandError, match="No such document"):
        _command("reindex", str(uuid.uuid4()))
    with pytest.raises(CommandError, match="Not a document id"):
        _command("reindex", "42")

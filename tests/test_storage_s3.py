"""Documents' files in an S3 bucket (DOCDB_STORAGE=s3) on a real S3-compatible server, SeaweedFS:
upload, ingestion by workers that have no disk in common with the web, search, the files served
to their owner alone, and deletion that leaves nothing in the bucket."""

import io
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from docdb.documents.models import Document, Status
from docdb.ops.health import storage_health
from docdb.weaviate_store import collection_recreate, pages_count
from tests.conftest import LoggedIn, S3Stack
from tests.helpers import UNIQUE_PAGE, UNIQUE_PHRASE, document_wait, report_pdf, user_make
from tests.pdf_factory import pdf_make
from tests.test_security import secret_document_upload, stranger_walk

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def s3_live(s3_stack: S3Stack, transactional_db: None) -> Iterator[S3Stack]:
    """As `live`, with the files in the bucket; the bucket is empty again afterwards."""
    collection_recreate()
    yield s3_stack
    for service in s3_stack.workers:
        if service.process.poll() is not None:
            pytest.fail(f"{service.name} died during the test:\n{service.log_tail()}")
    assert not s3_stack.s3.keys(), "a test left objects in the bucket"


def _nothing_on_the_workers_disks(s3: S3Stack) -> None:
    """Each worker's data folder holds only its empty media folder: everything went to the
    bucket, and the originals' copies for poppler were in temporary folders, gone now."""
    for data_dir in s3.data_dirs:
        assert [path.name for path in data_dir.iterdir()] == ["media"], data_dir
        assert not any((data_dir / "media").iterdir()), data_dir


def _upload(client: Client, path: Path) -> Document:
    with path.open("rb") as handle:
        response = client.post(reverse("documents:upload"), {"file": handle})
    assert response.status_code in (200, 302)
    return Document.objects.filter(original_name=path.name).latest("created_at")


@pytest.mark.sqlite_pass
def test_a_document_goes_through_the_bucket_and_leaves_nothing_behind(
    s3_live: S3Stack, tmp_path: Path, logged_in: LoggedIn
) -> None:
    owner, stranger = user_make(), user_make()
    client = logged_in(owner)
    document = document_wait(_upload(client, report_pdf(tmp_path)).id)
    assert document.status == Status.READY, document.error
    assert document.pages.count() == document.pages_total == 5

    prefix = f"documents/{document.id}/"
    names = [f"{number:05d}.jpg" for number in range(1, 6)]
    assert s3_live.s3.keys(prefix) == sorted(
        [f"{prefix}original.pdf"]
        + [f"{prefix}pages/{name}" for name in names]
        + [f"{prefix}thumbnails/{name}" for name in names]
    )
    _nothing_on_the_workers_disks(s3_live)
    health = storage_health()
    assert health.ok and s3_live.s3.bucket in health.details["bucket"], health

    response = client.get(reverse("search:search"), {"q": UNIQUE_PHRASE, "mode": "keyword"})
    results = response.context["results"]
    assert results[0].page.number == UNIQUE_PAGE
    # The result cards' blurred placeholders are read from the bucket too.
    assert "data:image/jpeg;base64," in response.content.decode()

    bucket = s3_live.s3.client()
    as_stranger = logged_in(stranger)
    for view, key in (
        ("documents:page_image", f"{prefix}pages/00003.jpg"),
        ("documents:page_thumbnail", f"{prefix}thumbnails/00003.jpg"),
    ):
        url = reverse(view, args=[document.id, UNIQUE_PAGE])
        response = client.get(url)
        assert response.status_code == 200, view
        assert response["Content-Type"] == "image/jpeg"
        stored = bucket.get_object(Bucket=s3_live.s3.bucket, Key=key)["Body"].read()
        assert b"".join(response.streaming_content) == stored
        assert as_stranger.get(url).status_code == 404, view
    original = client.get(reverse("documents:file", args=[document.id]))
    assert b"".join(original.streaming_content) == report_pdf(tmp_path, "again.pdf").read_bytes()
    assert as_stranger.get(reverse("documents:file", args=[document.id])).status_code == 404

    response = client.post(reverse("documents:delete", args=[document.id]))
    assert response.status_code == 302
    assert not Document.objects.filter(id=document.id).exists()
    assert s3_live.s3.keys() == []


@pytest.mark.sqlite_pass
def test_no_url_shows_a_document_in_the_bucket_to_anyone_else(
    s3_live: S3Stack, tmp_path: Path, logged_in: LoggedIn
) -> None:
    document = secret_document_upload(tmp_path, logged_in)
    stranger_walk(document, logged_in)
    client = logged_in(document.owner)
    client.post(reverse("documents:delete", args=[document.id]))


@pytest.mark.postgres_pass
def test_workers_without_a_shared_disk_process_documents_together(
    s3_live: S3Stack, tmp_path: Path, logged_in: LoggedIn
) -> None:
    """Two workers, each with an empty data folder of its own, on one queue, with PostgreSQL:
    every document is ready with all its pages, and nothing was written on their disks."""
    assert len(s3_live.workers) == 2
    owner = user_make()
    client = logged_in(owner)
    sizes = {"a.pdf": 3, "b.pdf": 2, "c.pdf": 4}
    documents = [
        _upload(
            client, pdf_make(tmp_path / name, pages=[[f"{name} page {n}"] for n in range(pages)])
        )
        for name, pages in sizes.items()
    ]
    for document in documents:
        document = document_wait(document.id)
        assert document.status == Status.READY, document.error
        pages = sizes[document.original_name]
        assert sorted(document.pages.values_list("number", flat=True)) == list(range(1, pages + 1))
        assert len(s3_live.s3.keys(f"documents/{document.id}/")) == 1 + 2 * pages
    _nothing_on_the_workers_disks(s3_live)
    for document in documents:
        client.post(reverse("documents:delete", args=[document.id]))


@pytest.mark.sqlite_pass
def test_a_single_machine_install_moves_its_files_to_the_bucket_and_a_new_collection(
    s3_live: S3Stack, tmp_path: Path, logged_in: LoggedIn
) -> None:
    """docs/scaling.md's move: `storage_copy` from the old media folder into the bucket (again
    after an interruption: nothing copied twice), then `reindex --import-only` into an empty
    collection (a new cluster's) from the stored page images; search and page images work."""
    owner = user_make()
    client = logged_in(owner)
    document = document_wait(_upload(client, report_pdf(tmp_path)).id)
    assert document.status == Status.READY, document.error
    # The old install's folder: the same names, under DOCDB_MEDIA_DIR; the new bucket is empty.
    media = tmp_path / "old-media"
    bucket = s3_live.s3.client()
    stored = s3_live.s3.keys()
    for key in stored:
        target = media / key
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(bucket.get_object(Bucket=s3_live.s3.bucket, Key=key)["Body"].read())
        bucket.delete_object(Bucket=s3_live.s3.bucket, Key=key)
    (media / "documents" / "stray.txt").write_text("not a document's file")
    collection_recreate()

    out = io.StringIO()
    call_command("storage_copy", str(media), stdout=out)
    assert out.getvalue().startswith("Copied 11 file(s)"), out.getvalue()
    assert len(s3_live.s3.keys()) == 11
    out = io.StringIO()
    call_command("storage_copy", str(media), stdout=out)
    assert out.getvalue().startswith("Copied 0 file(s) (0.0 MiB); 11 were there already")

    call_command("reindex", "--import-only", stdout=io.StringIO())
    deadline = time.monotonic() + 120
    while pages_count(owner_id=owner.pk, document_id=document.id) < 5:
        assert time.monotonic() < deadline, "the pages were not imported again"
        time.sleep(0.5)
    response = client.get(reverse("search:search"), {"q": UNIQUE_PHRASE, "mode": "keyword"})
    assert response.context["results"][0].page.number == UNIQUE_PAGE
    image = client.get(reverse("documents:page_image", args=[document.id, UNIQUE_PAGE]))
    assert (
        b"".join(image.streaming_content)
        == (media / f"documents/{document.id}/pages/{UNIQUE_PAGE:05d}.jpg").read_bytes()
    )
    client.post(reverse("documents:delete", args=[document.id]))

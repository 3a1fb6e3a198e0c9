"""A move and a re-import (or a turn of the pipeline) of the same document, interleaved at their
worst points, leave the pages in Weaviate in the library the database has
(`pages_library_settle`).

Each interleaving is forced in one thread by running one side inside the other's call to
Weaviate; no lock is involved, so the outcome is the same on SQLite and PostgreSQL."""

from pathlib import Path
from types import ModuleType

import pytest

from docdb.documents import ingestion, reimport, services
from docdb.documents.files import original_local
from docdb.documents.models import Document, Library, Membership, Page, Role, Status
from docdb.documents.reimport import document_reimport
from docdb.documents.services import document_move
from docdb.weaviate_store import PageObject, pages_count
from tests.conftest import Stack
from tests.helpers import document_wait, user_make
from tests.ops_helpers import document_add, small_pdf

pytestmark = pytest.mark.timeout(600)


def test_a_move_and_a_reimport_cannot_leave_pages_in_the_old_library(
    live: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner = user_make()
    document = document_wait(document_add(owner, small_pdf(tmp_path, pages=1)).id)
    assert document.status == Status.READY, document.error
    personal = document.library
    team = Library.objects.create(name="Team")
    Membership.objects.create(library=team, user=owner, role=Role.EDITOR)

    def move(library: Library) -> None:
        fresh = Document.objects.get(id=document.id)
        assert document_move(document=fresh, library=library, user=owner)

    def write_after_a_move(module: ModuleType, library: Library) -> None:
        """The move commits between the writer's read of the library and its write."""
        upsert = module.pages_upsert

        def upsert_after_a_move(pages: list[PageObject]) -> None:
            monkeypatch.setattr(module, "pages_upsert", upsert)
            move(library)
            upsert(pages)

        monkeypatch.setattr(module, "pages_upsert", upsert_after_a_move)

    write_after_a_move(reimport, team)
    assert document_reimport(document_id=document.id) == 1
    assert pages_count(document_id=document.id, library_id=team.id) == 1

    # The whole re-import (read, write, read again) runs after the move updated Weaviate and
    # before it commits: the re-import sees the library the move is leaving.
    library_set = services.pages_library_set

    def reimport_before_the_commit(**kwargs: object) -> None:
        library_set(**kwargs)  # type: ignore[arg-type]
        monkeypatch.setattr(services, "pages_library_set", library_set)
        assert document_reimport(document_id=document.id) == 1

    monkeypatch.setattr(services, "pages_library_set", reimport_before_the_commit)
    move(personal)
    assert Document.objects.get(id=document.id).library_id == personal.id
    assert pages_count(document_id=document.id, library_id=personal.id) == 1

    # A turn of the pipeline writes a range with the library read at its start. Its document
    # is unfinished, which no move takes, but it can be cancelled, moved and queued again
    # meanwhile; here the range is run again on the ready document, and moved under it.
    Page.objects.filter(document=document).update(indexed_at=None)
    stale = Document.objects.get(id=document.id)
    write_after_a_move(ingestion, team)
    with original_local(stale.original_file) as original:
        ingestion._range_ingest(stale, original, 1, 1)
    assert pages_count(document_id=document.id, library_id=team.id) == 1

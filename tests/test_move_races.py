"""A move and a re-import of the same document, interleaved at their worst points, leave the
pages in Weaviate in the library the database has (`pages_library_settle`).

Each interleaving is forced in one thread by running one side inside the other's call to
Weaviate; no lock is involved, so the outcome is the same on SQLite and PostgreSQL."""

from pathlib import Path

import pytest

from docdb.documents import reimport, services
from docdb.documents.models import Document, Library, Membership, Role, Status
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

    # The move commits between the re-import's read of the library and its write.
    upsert = reimport.pages_upsert

    def upsert_after_a_move(pages: list[PageObject]) -> None:
        monkeypatch.setattr(reimport, "pages_upsert", upsert)
        move(team)
        upsert(pages)

    monkeypatch.setattr(reimport, "pages_upsert", upsert_after_a_move)
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

"""Pages get their library in Weaviate without being embedded again: when a document moves to
another library, and when a collection indexed before libraries is upgraded at start-up
(`weaviate_schema`). The embedder's counters and the stored vectors show nothing was embedded."""

import io
import json
from pathlib import Path

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.http import HttpResponse
from django.test import override_settings
from django.urls import reverse

from docdb.documents.libraries import library_ids_visible
from docdb.documents.models import Document, Library, Membership, Role, Status
from docdb.documents.progress import document_progress
from docdb.documents.services import MoveRefused, document_move
from docdb.documents.tags import document_tags_set
from docdb.ops.reconcile import consistency_check, consistency_repair
from docdb.weaviate_store import (
    client_get,
    collection_ensure,
    page_multivector,
    page_uuid,
    pages_count,
    pages_library_set,
    pages_without_library,
)
from docdb.weaviate_store import schema as weaviate_schema
from tests.conftest import LoggedIn, Stack
from tests.helpers import report_pdf, user_make
from tests.ops_helpers import document_ready

pytestmark = [pytest.mark.sqlite_pass, pytest.mark.timeout(600)]


def _embedded(live: Stack) -> int:
    return int(live.embedder.health()["counters"]["images_embedded"])  # type: ignore[index]


def _schema_run() -> dict[str, object]:
    out = io.StringIO()
    call_command("weaviate_schema", stdout=out, stderr=io.StringIO())
    return json.loads(out.getvalue())  # type: ignore[no-any-return]


def test_pages_get_their_library_without_being_embedded_again(live: Stack, tmp_path: Path) -> None:
    owner = user_make()
    document = document_ready(owner, tmp_path)
    pages = document.pages.count()
    document_tags_set(document=document, names=["Tax"])
    personal = document.library
    team = Library.objects.create(name="Team")
    Membership.objects.create(library=team, user=owner, role=Role.EDITOR)
    vectors = page_multivector(
        library_ids=library_ids_visible(user=owner), document_id=document.id, page_number=1
    )
    assert vectors
    embedded = _embedded(live)

    assert document_move(document=document, library=team, user=owner)
    assert pages_count(document_id=document.id, library_id=team.id) == pages
    assert pages_count(document_id=document.id, library_id=personal.id) == 0
    assert page_multivector(library_ids=[team.id], document_id=document.id, page_number=1) == (
        vectors
    )
    assert page_multivector(library_ids=[personal.id], document_id=document.id, page_number=1) is (
        None
    )
    # Its tags are the new library's now, by the same names.
    assert [(tag.name, tag.library_id) for tag in document.tags.all()] == [("Tax", team.id)]
    # The library it left may take the same file again; then it cannot move back.
    copy = Document.objects.create(
        owner=owner, library=personal, title="copy", original_name="c.pdf", sha256=document.sha256
    )
    with pytest.raises(MoveRefused, match="already holds this file"):
        document_move(document=document, library=personal, user=owner)
    copy.delete()

    # Indexed before libraries: the objects as an older DocDB stored them, with their vectors
    # and no library. Start-up writes the library back, once.
    collection = client_get().collections.use(settings.WEAVIATE_COLLECTION)
    for number in range(1, pages + 1):
        obj = collection.query.fetch_object_by_id(
            page_uuid(document.id, number), include_vector=True
        )
        assert obj is not None
        properties = {k: v for k, v in obj.properties.items() if k != "library_id"}
        collection.data.replace(uuid=obj.uuid, properties=properties, vector=obj.vector)
    assert pages_without_library() == pages
    assert _schema_run()["libraries_backfilled"] == 1
    assert pages_without_library() == 0
    assert pages_count(document_id=document.id, library_id=team.id) == pages
    assert "libraries_backfilled" not in _schema_run()
    assert page_multivector(library_ids=[team.id], document_id=document.id, page_number=1) == (
        vectors
    )

    # A page's object left in the library the document moved out of: searched there, missed
    # in its own. The consistency check names it; its repair writes the library in place.
    pages_library_set(document_id=document.id, page_numbers=[2], library_id=personal.id)
    report = consistency_check()
    assert [check.misfiled_objects for check in report.problems] == [[2]]
    assert "pages in another library in Weaviate: 2" in report.problems[0].problems
    done, failed = consistency_repair(report)
    assert (done, failed) == (
        [f"“{document.title}” ({document.id}): put 1 objects back in the document's library"],
        [],
    )
    assert consistency_check().consistent
    assert pages_count(document_id=document.id, library_id=team.id) == pages
    assert _embedded(live) == embedded


def test_a_collection_made_before_libraries_gets_the_property(
    live: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    properties = weaviate_schema._properties
    with override_settings(WEAVIATE_COLLECTION="DocDBPreLibraries"):
        monkeypatch.setattr(
            weaviate_schema,
            "_properties",
            lambda: [p for p in properties() if p.name != weaviate_schema.LIBRARY_PROPERTY],
        )
        assert "library_id" not in collection_ensure()["properties"]
        monkeypatch.undo()
        try:
            assert collection_ensure()["properties"]["library_id"] == "int"
        finally:
            client_get().collections.delete("DocDBPreLibraries")


def test_uploads_list_and_moves_follow_the_persons_libraries_and_roles(
    db: None, logged_in: LoggedIn, tmp_path: Path, settings: object
) -> None:
    settings.MEDIA_ROOT = tmp_path  # type: ignore[attr-defined]
    me, other = user_make(), user_make()
    team, board = Library.objects.create(name="Team"), Library.objects.create(name="Board")
    Membership.objects.create(library=team, user=me, role=Role.EDITOR)
    Membership.objects.create(library=board, user=me, role=Role.VIEWER)
    theirs = Library.objects.personal(other)
    client = logged_in(me)
    page = client.get(reverse("documents:upload"))
    assert [library.label for library in page.context["upload_libraries"]] == ["Personal", "Team"]

    pdf = report_pdf(tmp_path).read_bytes()

    def upload(library: Library | None) -> HttpResponse:
        data: dict[str, object] = {"file": SimpleUploadedFile("report.pdf", pdf)}
        if library is not None:
            data["library"] = library.id
        return client.post(reverse("documents:upload_file"), data)  # type: ignore[no-any-return]

    assert upload(team).status_code == 201
    # The same file in another library is no duplicate; twice in one library is, and says where.
    assert upload(None).status_code == 201
    again = upload(team)
    assert again.status_code == 409
    assert "It is in the library “Team”." in again.json()["error"]
    refused = upload(board)
    assert refused.status_code == 403
    assert "your role there is viewer" in refused.json()["error"]
    assert upload(theirs).status_code == 404
    assert {d.library.name for d in Document.objects.filter(owner=me)} == {"Personal", "Team"}

    listed = client.get(reverse("documents:list"), {"library": team.id})
    assert [d.library_id for d in listed.context["page_obj"]] == [team.id]
    assert len(client.get(reverse("documents:list")).context["page_obj"]) == 2

    mine = Document.objects.get(owner=me, library__personal_of=me)
    Document.objects.filter(id=mine.id).update(status=Status.READY)
    bulk = reverse("documents:bulk")
    for library, said in ((board, "you cannot add documents"), (team, "already holds this file")):
        response = client.post(
            bulk, {"document": [str(mine.id)], "action": "move", "library": library.id}, follow=True
        )
        assert any(said in str(m) for m in response.context["messages"]), library
    Document.objects.filter(library=team).delete()
    response = client.post(
        bulk, {"document": [str(mine.id)], "action": "move", "library": team.id}, follow=True
    )
    assert [str(m) for m in response.context["messages"]] == [
        "Moved 1 document to another library."
    ]
    assert Document.objects.get(id=mine.id).library_id == team.id


def test_libraries_of_the_same_name_say_whose_they_are_wherever_one_is_picked(
    db: None, logged_in: LoggedIn
) -> None:
    me, ann, ben = user_make(), user_make(), user_make()
    ours, theirs, mine = (
        Library.objects.create(name=name) for name in ("Archive", "archive", "Archive")
    )
    for library, owner in ((ours, ann), (theirs, ben)):
        Membership.objects.create(library=library, user=owner, role=Role.OWNER)
        Membership.objects.create(library=library, user=me, role=Role.EDITOR)
    Membership.objects.create(library=mine, user=me, role=Role.OWNER)
    # A shared library named like everyone's personal one, and a second one of ann's.
    shared = Library.objects.create(name="Personal")
    twin = Library.objects.create(name="Archive")
    for library in (shared, twin):
        Membership.objects.create(library=library, user=ann, role=Role.OWNER)
        Membership.objects.create(library=library, user=me, role=Role.EDITOR)
    Library.objects.create(name="Board")  # not theirs: never offered
    client = logged_in(me)

    expected = [
        "Personal (yours)",
        f"Archive ({ann.username}) #{ours.id}",
        f"archive ({ben.username})",
        f"Archive ({me.username})",
        f"Archive ({ann.username}) #{twin.id}",
        f"Personal ({ann.username})",
    ]
    upload = client.get(reverse("documents:upload")).context["upload_libraries"]
    assert [choice.label for choice in upload] == expected
    listed = client.get(reverse("documents:list"))
    assert [choice.label for choice in listed.context["libraries"]] == expected
    assert [choice.label for choice in listed.context["move_targets"]] == expected
    search = client.get(reverse("search:search"))
    assert [choice.label for choice in search.context["filter_libraries"]] == expected
    page = client.get(reverse("documents:upload")).content.decode()
    assert f'<option value="{theirs.id}">archive ({ben.username})</option>' in page
    rows = client.get(reverse("libraries:list")).context["rows"]
    assert sorted(row.label for row in rows) == sorted(expected)


def test_a_viewer_is_offered_no_cancel_retry_or_unlock(db: None, logged_in: LoggedIn) -> None:
    uploader, reader = user_make(), user_make()
    team = Library.objects.create(name="Team")
    Membership.objects.create(library=team, user=uploader, role=Role.EDITOR)
    Membership.objects.create(library=team, user=reader, role=Role.VIEWER)
    queued = Document.objects.create(owner=uploader, library=team, title="Queued", sha256="1")
    failed = Document.objects.create(
        owner=uploader,
        library=team,
        title="Failed",
        sha256="2",
        status=Status.FAILED,
        error="Boom.",
    )
    for document, control in ((queued, "data-cancel"), (failed, "data-retry")):
        assert control in document_progress(document, viewer=uploader)["status_html"]
        seen = document_progress(document, viewer=reader)
        assert seen["can_change"] is False
        assert control not in seen["status_html"]
    # Nor the list's row menu (rename, delete), which its editors get.
    for person, menus in ((uploader, 2), (reader, 0)):
        listed = logged_in(person).get(reverse("documents:list")).content.decode()
        assert listed.count('aria-label="Actions for') == menus

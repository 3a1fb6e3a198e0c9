"""Deleting a person (`documents.people`, the user admin): what they shared stays with the
other members, what was theirs alone goes completely, and a library never loses its last owner.
"""

from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db.models import RestrictedError
from django.test import Client, override_settings
from django.urls import reverse

from docdb.documents.libraries import documents_visible
from docdb.documents.memberships import library_create, member_add, member_role_set
from docdb.documents.models import Document, Library, Membership, Role, Status, Tag
from docdb.documents.people import PersonNotDeleted, person_delete, person_delete_plan
from docdb.documents.services import document_delete, document_upload
from docdb.documents.tags import document_tags_set
from docdb.weaviate_store import client_close, pages_count
from tests.conftest import LoggedIn, Stack
from tests.helpers import PASSWORD, document_row, document_stored, document_wait, user_make
from tests.ops_helpers import small_pdf, staff_make

pytestmark = pytest.mark.timeout(300)

CHANGELIST = reverse("admin:auth_user_changelist")
# The confirmation's button.
CONFIRM = 'type="submit" value="Yes'


def _delete_url(person: User) -> str:
    return reverse("admin:auth_user_delete", args=[person.pk])


def _processed(owner: User, tmp_path: Path, name: str, library: Library | None = None) -> Document:
    path = small_pdf(tmp_path, name, pages=1)
    upload = SimpleUploadedFile(path.name, path.read_bytes(), content_type="application/pdf")
    document = document_upload(owner=owner, upload=upload, library=library)
    document = document_wait(document.id)
    assert document.status == Status.READY, document.error
    return document


def _bulk(client: Client, *people: User, **extra: str) -> str:
    response = client.post(
        CHANGELIST,
        {"action": "delete_selected", "_selected_action": [p.pk for p in people], **extra},
        follow=True,
    )
    assert response.status_code == 200
    return response.content.decode()


# The rules and the database's part in them: both passes run this (no search index is reached:
# the person deleted has no personal documents).
def test_a_library_keeps_an_owner_and_shared_uploads_pass_to_it(
    transactional_db: None, logged_in: LoggedIn
) -> None:
    alice, bob, carol = user_make(), user_make(), user_make()
    team = library_create(by=alice, name="Team")
    member_add(library=team, by=alice, who=bob.username, role=Role.EDITOR)
    member_add(library=team, by=alice, who=carol.username, role=Role.VIEWER)
    archive = library_create(by=alice, name="Archive")  # alone, but holds a document
    document_row(archive, alice, "old minutes", status=Status.READY)
    solo = library_create(by=alice, name="Solo")  # alone and empty: goes with her
    uploaded = document_row(team, alice, "budget", status=Status.READY)
    document_tags_set(document=uploaded, names=["Tax"], user=alice)
    staff = logged_in(staff_make())

    # Refused while Team and Archive would be left without an owner; nothing changes.
    with pytest.raises(PersonNotDeleted) as refused:
        person_delete(person=alice)
    assert str(refused.value) == (
        f"{alice.username} cannot be deleted yet: the shared libraries “Archive” and “Team” "
        "would be left without an owner, and they have other members or documents. For each, "
        "make another member an owner, or move or delete its documents and delete the library; "
        f"then delete {alice.username}."
    )
    page = staff.get(_delete_url(alice)).content.decode()
    assert str(refused.value) in page
    assert CONFIRM not in page
    answer = staff.post(_delete_url(alice), {"post": "yes"}, follow=True).content.decode()
    assert str(refused.value) in answer
    bulk = _bulk(staff, alice, carol)
    assert str(refused.value) in bulk and CONFIRM not in bulk
    assert User.objects.filter(pk=alice.pk).exists()
    assert Library.objects.filter(pk__in=[team.pk, archive.pk, solo.pk]).count() == 3
    assert Document.objects.get(pk=uploaded.pk).owner == alice

    # The database refuses too, whatever deletes her: her shared uploads have not passed on.
    with pytest.raises(RestrictedError):
        User.objects.get(pk=alice.pk).delete()

    # Bob becomes an owner of Team and Archive's document goes: now she can be deleted.
    member_role_set(
        membership=Membership.objects.get(library=team, user=bob), by=alice, role=Role.OWNER
    )
    Document.objects.filter(library=archive).delete()
    plan = person_delete_plan(person=alice)
    assert plan.refusal is None
    assert [library.name for library in plan.libraries_deleted] == ["Archive", "Solo"]
    page = staff.get(_delete_url(alice)).content.decode()
    assert f"Stays in the shared library “Team”, passing to its owner {bob.username}" in page
    assert "1 document they uploaded and 1 tag they made" in page
    assert "Deleted: the shared library “Solo”" in page
    assert CONFIRM in page

    answer = staff.post(_delete_url(alice), {"post": "yes"}, follow=True)
    assert answer.redirect_chain[-1][0] == CHANGELIST
    assert not User.objects.filter(pk=alice.pk).exists()
    assert not Library.objects.filter(pk__in=[archive.pk, solo.pk]).exists()
    uploaded.refresh_from_db()
    assert uploaded.owner == bob and uploaded.library == team
    assert list(Tag.objects.filter(library=team).values_list("name", "owner")) == [("Tax", bob.pk)]
    assert documents_visible(user=carol).filter(pk=uploaded.pk).exists()
    assert list(Membership.objects.filter(library=team, role=Role.OWNER)) == [
        Membership.objects.get(library=team, user=bob)
    ]

    # The bulk action deletes whom it can and says why not for the others.
    dave = user_make()
    message = _bulk(staff, carol, dave, post="yes")
    assert "Deleted 2 of the 2 selected people." in message
    assert not User.objects.filter(pk__in=[carol.pk, dave.pk]).exists()


@pytest.mark.sqlite_pass  # its subject is the search index being away
def test_an_unreachable_search_index_deletes_nothing(
    transactional_db: None, tmp_path: Path, settings: object
) -> None:
    settings.MEDIA_ROOT = tmp_path  # type: ignore[attr-defined]
    person = user_make()
    documents = [document_stored(person, small_pdf(tmp_path, f"{n}.pdf", pages=1)) for n in (1, 2)]
    client_close()
    # Nothing listens on ports 1 and 9 here: connecting is refused at once.
    with override_settings(WEAVIATE_URL="http://127.0.0.1:9", WEAVIATE_GRPC_PORT=1):
        try:
            with pytest.raises(PersonNotDeleted) as failed:
                person_delete(person=person)
        finally:
            client_close()
    assert str(failed.value).startswith(
        f"{person.username} was not deleted: the search index is not reachable"
    )
    assert "0 of their 2 personal documents were deleted completely" in str(failed.value)
    assert User.objects.filter(pk=person.pk).exists()
    for document in documents:
        assert Document.objects.filter(pk=document.pk).exists()
        assert Path(document.file.path).exists()


@pytest.mark.sqlite_pass  # its subject is the search index and the files
def test_personal_documents_go_completely_and_shared_ones_stay_deletable(
    live: Stack, tmp_path: Path, logged_in: LoggedIn
) -> None:
    alice, bob = user_make(), user_make()
    team = library_create(by=bob, name="Team")
    member_add(library=team, by=bob, who=alice.username, role=Role.EDITOR)
    personal = _processed(alice, tmp_path, "diary.pdf")
    shared = _processed(alice, tmp_path, "handbook.pdf", library=team)
    assert pages_count(document_id=personal.id) == 1
    assert personal.directory.exists()
    staff = logged_in(staff_make())

    page = staff.get(_delete_url(alice)).content.decode()
    assert "Deleted: the 1 document of their personal library" in page
    assert f"<li>{personal.title}</li>" in page
    assert f"Stays in the shared library “Team”, passing to its owner {bob.username}" in page
    assert f"<li>{shared.title}</li>" in page
    staff.post(_delete_url(alice), {"post": "yes"})

    assert not User.objects.filter(pk=alice.pk).exists()
    assert not Document.objects.filter(pk=personal.pk).exists()
    assert pages_count(document_id=personal.id) == 0
    assert not personal.directory.exists()
    # The shared document stays whole: its pages are still found, under its old uploader's id.
    shared.refresh_from_db()
    assert shared.owner == bob
    assert pages_count(owner_id=alice.pk, document_id=shared.id) == 1
    assert documents_visible(user=bob).filter(pk=shared.pk).exists()

    # Deleted later, it goes completely: deletion goes by the document, not by its uploader.
    document_delete(document=shared)
    assert pages_count(document_id=shared.id) == 0
    assert not shared.directory.exists()


# A view over the same service and queries: the SQLite pass runs it.
@pytest.mark.sqlite_pass
def test_a_person_deletes_their_own_account_with_their_password(
    transactional_db: None, logged_in: LoggedIn
) -> None:
    alice, bob = user_make(), user_make()
    team = library_create(by=alice, name="Team")
    member_add(library=team, by=alice, who=bob.username, role=Role.VIEWER)
    client = logged_in(alice)
    account = reverse("account:account")
    delete = reverse("account:delete")

    page = client.get(account).content.decode()
    assert "Your account cannot be deleted yet: the shared library “Team” would be left" in page
    assert "then delete your account." in page
    assert "Delete my account" not in page
    member_role_set(
        membership=Membership.objects.get(library=team, user=bob), by=alice, role=Role.OWNER
    )
    document_row(team, alice, "budget", status=Status.READY)
    page = client.get(account).content.decode()
    assert "Delete my account" in page
    assert "the 1 document you uploaded to shared libraries stay there" in page

    wrong = client.post(delete, {"password": "not it"})
    assert wrong.status_code == 400
    assert "That is not your password: nothing was deleted." in wrong.content.decode()
    assert User.objects.filter(pk=alice.pk).exists()

    done = client.post(delete, {"password": PASSWORD}, follow=True)
    assert done.redirect_chain[-1][0] == reverse("login")
    assert "Your account was deleted." in done.content.decode()
    assert not User.objects.filter(pk=alice.pk).exists()
    assert Document.objects.get(title="budget").owner == bob
    assert client.get(account).status_code == 302  # logged out

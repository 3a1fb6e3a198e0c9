"""Managing libraries: the services' rules (an owner always, a personal library its person's
alone, roles), the Libraries pages and the API's /api/libraries endpoints.

Nothing here reaches Weaviate or the pipeline: documents are rows made here.
"""

import io
import threading
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.db import connection, transaction
from django.test import Client
from django.urls import reverse

from docdb.documents.memberships import (
    LibraryForbidden,
    LibraryRejected,
    libraries_listed,
    library_create,
    library_delete,
    library_rename,
    member_add,
    member_remove,
    member_role_set,
)
from docdb.documents.models import Document, Library, Membership, Role
from tests.conftest import LoggedIn
from tests.helpers import document_row, report_pdf, user_make
from tests.ops_helpers import staff_make


def _membership(library: Library, user: User) -> Membership:
    return Membership.objects.select_related("user", "library").get(library=library, user=user)


def _shared(owner: User, *members: tuple[User, Role]) -> Library:
    library = library_create(by=owner, name="Team")
    for person, role in members:
        member_add(library=library, by=owner, who=person.username, role=role)
    return library


# --- the services: their subject is the database (both passes run them) ---


def test_names_are_trimmed_and_checked(db: None) -> None:
    owner = user_make()
    library = library_create(by=owner, name="  Household   papers ")
    assert library.name == "Household papers"
    assert _membership(library, owner).role == Role.OWNER
    assert library_rename(library=library, by=owner, name="x" * 100).name == "x" * 100
    for bad, says in (
        ("", "needs a name"),
        ("   ", "needs a name"),
        ("x" * 101, "at most 100"),
        ("nul\x00", "control characters"),
        ("bell\x07", "control characters"),
    ):
        with pytest.raises(LibraryRejected, match=says):
            library_create(by=owner, name=bad)
        with pytest.raises(LibraryRejected, match=says):
            library_rename(library=library, by=owner, name=bad)


def test_a_library_always_keeps_an_owner(db: None) -> None:
    owner, second = user_make(), user_make()
    library = library_create(by=owner, name="Team")
    mine = _membership(library, owner)
    with pytest.raises(LibraryRejected, match="last owner"):
        member_role_set(membership=mine, by=owner, role=Role.EDITOR)
    with pytest.raises(LibraryRejected, match="You are the last owner"):
        member_remove(membership=mine, by=owner)
    # With a second owner, the first may step down, and then leave.
    member_add(library=library, by=owner, who=second.username, role=Role.OWNER)
    member_role_set(membership=mine, by=owner, role=Role.VIEWER)
    # Now a viewer: no longer allowed to manage, only to leave.
    theirs = _membership(library, second)
    with pytest.raises(LibraryForbidden):
        member_role_set(membership=theirs, by=owner, role=Role.VIEWER)
    member_remove(membership=mine, by=owner)
    assert list(library.memberships.values_list("user", "role")) == [(second.pk, Role.OWNER)]
    with pytest.raises(LibraryRejected, match="last owner"):
        member_remove(membership=theirs, by=second)


def test_viewers_and_editors_change_nothing_of_the_library(db: None) -> None:
    owner, viewer, editor, newcomer = user_make(), user_make(), user_make(), user_make()
    library = _shared(owner, (viewer, Role.VIEWER), (editor, Role.EDITOR))
    for person in (viewer, editor):
        with pytest.raises(LibraryForbidden):
            library_rename(library=library, by=person, name="Mine now")
        with pytest.raises(LibraryForbidden):
            library_delete(library=library, by=person)
        with pytest.raises(LibraryForbidden):
            member_add(library=library, by=person, who=newcomer.username, role=Role.OWNER)
        with pytest.raises(LibraryForbidden):
            member_role_set(membership=_membership(library, person), by=person, role=Role.OWNER)
        with pytest.raises(LibraryForbidden):
            member_remove(membership=_membership(library, owner), by=person)
    library.refresh_from_db()
    assert library.name == "Team"
    assert library.memberships.count() == 3
    # Anyone leaves by themselves.
    member_remove(membership=_membership(library, viewer), by=viewer)
    assert not library.memberships.filter(user=viewer).exists()


def test_a_personal_library_is_its_persons_alone(db: None) -> None:
    person, other = user_make(), user_make()
    personal = Library.objects.personal(person)
    own = _membership(personal, person)
    with pytest.raises(LibraryRejected, match="make a shared library"):
        member_add(library=personal, by=person, who=other.username, role=Role.VIEWER)
    with pytest.raises(LibraryRejected, match="make a shared library"):
        member_role_set(membership=own, by=person, role=Role.VIEWER)
    with pytest.raises(LibraryRejected, match="cannot be left"):
        member_remove(membership=own, by=person)
    with pytest.raises(LibraryRejected, match="cannot be deleted"):
        library_delete(library=personal, by=person)
    assert list(personal.memberships.values_list("user", "role")) == [(person.pk, Role.OWNER)]


def test_members_are_found_by_username_or_email(db: None) -> None:
    owner = user_make()
    alice = User.objects.create_user("alice", email="Alice@Example.org")
    User.objects.create_user("twin1", email="twin@example.org")
    User.objects.create_user("twin2", email="twin@example.org")
    User.objects.create_user("gone", email="gone@example.org", is_active=False)
    library = library_create(by=owner, name="Team")
    added = member_add(library=library, by=owner, who=" alice@example.org ", role=Role.EDITOR)
    assert (added.user, added.role) == (alice, Role.EDITOR)
    with pytest.raises(LibraryRejected, match=r"alice is already a member \(editor\)"):
        member_add(library=library, by=owner, who="alice", role=Role.VIEWER)
    with pytest.raises(LibraryRejected, match="give the username"):
        member_add(library=library, by=owner, who="twin@example.org", role=Role.VIEWER)
    for nobody in ("gone", "gone@example.org", "nobody", ""):
        with pytest.raises(LibraryRejected, match="Nobody here has"):
            member_add(library=library, by=owner, who=nobody, role=Role.VIEWER)


def test_a_library_is_deleted_only_once_empty(db: None) -> None:
    owner = user_make()
    library = library_create(by=owner, name="Archive")
    document = document_row(library, owner, "Old lease")
    with pytest.raises(LibraryRejected, match="still holds 1 document: move them"):
        library_delete(library=library, by=owner)
    document.delete()
    library_delete(library=library, by=owner)
    assert not Library.objects.filter(pk=library.pk).exists()
    assert not Membership.objects.filter(library_id=library.pk).exists()


def test_the_list_shows_each_library_with_role_and_counts(db: None) -> None:
    owner, viewer = user_make(), user_make()
    library = _shared(owner, (viewer, Role.VIEWER))
    document_row(library, owner, "One")
    document_row(library, viewer, "Two")
    Library.objects.personal(viewer)
    rows = libraries_listed(user=viewer)
    assert [(row.library.name, row.role, row.members, row.documents) for row in rows] == [
        ("Personal", Role.OWNER, 1, 0),
        ("Team", Role.VIEWER, 2, 2),
    ]
    # A new person has their personal library from the start.
    assert [row.library.name for row in libraries_listed(user=user_make())] == ["Personal"]


@pytest.mark.postgres_pass
@pytest.mark.django_db(transaction=True)
def test_an_owner_demoted_while_demoting_the_other_is_refused() -> None:
    """Two owners demote each other at once. The first change holds the library's row lock,
    as the service does, while the second comes: the second waits, then reads that its maker
    is no longer an owner, and is refused. Without the lock both would pass and leave no owner
    (SQLite has no row locks to test)."""
    first, second = user_make(), user_make()
    library = _shared(first, (second, Role.OWNER))
    refused: list[Exception] = []

    def demote_first() -> None:
        try:
            member_role_set(membership=_membership(library, first), by=second, role=Role.EDITOR)
        except LibraryRejected as exc:
            refused.append(exc)
        finally:
            connection.close()

    with transaction.atomic():
        Library.objects.select_for_update().get(pk=library.pk)
        Membership.objects.filter(library=library, user=second).update(role=Role.EDITOR)
        racing = threading.Thread(target=demote_first)
        racing.start()
        racing.join(timeout=0.5)  # it waits for the lock (without one it would be done)
    racing.join(timeout=30)
    assert list(library.memberships.filter(role=Role.OWNER).values_list("user", flat=True)) == [
        first.pk
    ]
    assert len(refused) == 1 and isinstance(refused[0], LibraryForbidden)


# --- the pages and the API over those services: the SQLite pass runs them ---


def _messages(response: object) -> list[str]:
    return [str(message) for message in response.context["messages"]]  # type: ignore[attr-defined]


def _library_urls(library: Library, member: User) -> list[tuple[str, str]]:
    """Every URL of one library, with the method that changes something."""
    ids = [library.pk]
    return [
        ("get", reverse("libraries:detail", args=ids)),
        ("get", reverse("libraries:delete", args=ids)),
        ("get", reverse("libraries:leave", args=ids)),
        ("post", reverse("libraries:rename", args=ids)),
        ("post", reverse("libraries:delete", args=ids)),
        ("post", reverse("libraries:leave", args=ids)),
        ("post", reverse("libraries:member_add", args=ids)),
        ("post", reverse("libraries:member_role", args=[library.pk, member.pk])),
        ("post", reverse("libraries:member_remove", args=[library.pk, member.pk])),
    ]


@pytest.mark.sqlite_pass
def test_an_owner_makes_a_library_and_manages_its_members(db: None, logged_in: LoggedIn) -> None:
    owner, friend = user_make(), user_make()
    client = logged_in(owner)
    listed = client.get(reverse("libraries:list"))
    assert listed.status_code == 200
    assert b'href="/libraries/"' in listed.content  # the navigation's link

    response = client.post(reverse("libraries:create"), {"name": " Family "}, follow=True)
    library = Library.objects.get(name="Family")
    assert response.redirect_chain[-1][0] == reverse("libraries:detail", args=[library.pk])
    member_add = reverse("libraries:member_add", args=[library.pk])
    response = client.post(member_add, {"who": friend.username, "role": "editor"}, follow=True)
    assert _messages(response) == [f"{friend.username} is now a member, as an editor."]
    assert f'data-member="{friend.username}"' in response.content.decode()
    role_url = reverse("libraries:member_role", args=[library.pk, friend.pk])
    response = client.post(role_url, {"role": "owner"}, follow=True)
    assert _messages(response) == [f"{friend.username} is now an owner."]

    # Refusals are messages a person understands, on the same page.
    for url, data, says in (
        (member_add, {"who": "no-such-person", "role": "viewer"}, "Nobody here has"),
        (member_add, {"who": friend.username, "role": "king"}, "Choose a role"),
        (reverse("libraries:rename", args=[library.pk]), {"name": " "}, "needs a name"),
        (reverse("libraries:create"), {"name": "x" * 101}, "at most 100 characters"),
    ):
        response = client.post(url, data, follow=True)
        assert response.status_code == 200
        assert says in " ".join(_messages(response)), url

    body = client.get(reverse("libraries:list")).content.decode()
    assert "Family" in body and "Personal" in body

    response = client.post(
        reverse("libraries:member_remove", args=[library.pk, friend.pk]), follow=True
    )
    assert _messages(response) == [f"{friend.username} is no longer a member."]
    assert not library.memberships.filter(user=friend).exists()
    response = client.post(reverse("libraries:delete", args=[library.pk]), follow=True)
    assert _messages(response) == ["The library “Family” was deleted."]
    assert not Library.objects.filter(pk=library.pk).exists()


@pytest.mark.sqlite_pass
def test_a_personal_library_page_says_to_make_a_shared_one(db: None, logged_in: LoggedIn) -> None:
    person = user_make()
    personal = Library.objects.personal(person)
    body = logged_in(person).get(reverse("libraries:detail", args=[personal.pk])).content
    text = body.decode()
    assert "make a shared library" in text
    assert reverse("libraries:member_add", args=[personal.pk]) not in text
    assert reverse("libraries:delete", args=[personal.pk]) not in text


@pytest.mark.sqlite_pass
def test_members_without_the_role_see_members_but_no_controls(
    db: None, logged_in: LoggedIn
) -> None:
    owner, viewer, editor = user_make(), user_make(), user_make()
    library = _shared(owner, (viewer, Role.VIEWER), (editor, Role.EDITOR))
    for person in (viewer, editor):
        client = logged_in(person)
        page = client.get(reverse("libraries:detail", args=[library.pk]))
        assert page.status_code == 200
        text = page.content.decode()
        assert owner.username in text and viewer.username in text
        assert "<select" not in text and "Remove" not in text and "Rename" not in text
        for method, url in _library_urls(library, owner):
            # Leaving and reading are any member's; the rest is an owner's.
            if url.endswith("/leave/") or (method == "get" and "/delete/" not in url):
                continue
            response = getattr(client, method)(url, {"who": person.username, "role": "owner"})
            assert response.status_code == 403, (person, method, url)
    assert library.memberships.count() == 3
    assert set(library.memberships.values_list("role", flat=True)) == {"owner", "viewer", "editor"}


@pytest.mark.sqlite_pass
def test_a_non_member_gets_404_everywhere_and_a_removed_member_at_once(
    db: None, logged_in: LoggedIn
) -> None:
    owner, member, stranger = user_make(), user_make(), user_make()
    library = _shared(owner, (member, Role.EDITOR))
    as_stranger = logged_in(stranger)
    for method, url in _library_urls(library, owner):
        response = getattr(as_stranger, method)(url, {"name": "x", "who": stranger.username})
        assert response.status_code == 404, (method, url)
    assert "Team" not in as_stranger.get(reverse("libraries:list")).content.decode()

    as_member = logged_in(member)
    assert as_member.get(reverse("libraries:detail", args=[library.pk])).status_code == 200
    logged_in(owner).post(reverse("libraries:member_remove", args=[library.pk, member.pk]))
    # The very next request of the removed member: the library is gone for them.
    for method, url in _library_urls(library, owner):
        assert getattr(as_member, method)(url).status_code == 404, (method, url)
    assert "Team" not in as_member.get(reverse("libraries:list")).content.decode()


@pytest.mark.sqlite_pass
def test_a_member_leaves_but_the_last_owner_is_told_why_not(db: None, logged_in: LoggedIn) -> None:
    owner, viewer = user_make(), user_make()
    library = _shared(owner, (viewer, Role.VIEWER))
    leave = reverse("libraries:leave", args=[library.pk])
    as_owner = logged_in(owner)
    assert as_owner.get(leave).status_code == 200
    response = as_owner.post(leave, follow=True)
    assert _messages(response) == [
        "You are the last owner of “Team”: make someone else an owner first, or delete the library."
    ]
    response = logged_in(viewer).post(leave, follow=True)
    assert response.redirect_chain[-1][0] == reverse("libraries:list")
    assert _messages(response) == ["You left “Team”."]
    assert list(library.memberships.values_list("user", flat=True)) == [owner.pk]


@pytest.fixture
def api_for(db: None) -> object:
    def client_for(user: User) -> Client:
        out = io.StringIO()
        call_command("create_api_token", user.username, stdout=out)
        return Client(headers={"Authorization": f"Bearer {out.getvalue().strip()}"})

    return client_for


@pytest.mark.sqlite_pass
def test_the_api_manages_libraries_with_the_same_rules(api_for: object) -> None:
    owner, friend, stranger = user_make(), user_make(), user_make()
    api, as_friend, as_stranger = api_for(owner), api_for(friend), api_for(stranger)  # type: ignore[operator]
    json = "application/json"

    created = api.post("/api/libraries", {"name": " Lab "}, content_type=json)
    assert created.status_code == 201, created.content
    library = created.json()
    assert (library["name"], library["role"], library["personal"]) == ("Lab", "owner", False)
    assert (library["members"], library["documents"]) == (1, 0)
    base = f"/api/libraries/{library['id']}"
    assert api.post("/api/libraries", {"name": ""}, content_type=json).json() == {
        "detail": "A library needs a name."
    }
    listed = api.get("/api/libraries").json()["libraries"]
    assert [row["name"] for row in listed] == ["Personal", "Lab"]

    added = api.post(f"{base}/members", {"who": friend.username}, content_type=json)
    assert added.status_code == 201
    assert added.json()["role"] == "viewer"
    member = f"{base}/members/{friend.pk}"
    # A viewer reads but changes nothing; a stranger sees nothing.
    assert as_friend.get(base).json()["role"] == "viewer"
    assert [m["username"] for m in as_friend.get(f"{base}/members").json()["members"]] == [
        owner.username,
        friend.username,
    ]
    for method, url, body in (
        ("patch", base, {"name": "Mine"}),
        ("delete", base, None),
        ("post", f"{base}/members", {"who": stranger.username}),
        ("patch", f"{base}/members/{owner.pk}", {"role": "viewer"}),
        ("delete", f"{base}/members/{owner.pk}", None),
    ):
        response = getattr(as_friend, method)(url, body, content_type=json)
        assert response.status_code == 403, (method, url)
        assert response.json()["detail"] == "Only an owner of “Lab” can change it."
        response = getattr(as_stranger, method)(url, body, content_type=json)
        assert response.status_code == 404, (method, url)
    for url in (base, f"{base}/members"):
        assert as_stranger.get(url).status_code == 404

    assert api.patch(member, {"role": "editor"}, content_type=json).json()["role"] == "editor"
    assert api.patch(member, {"role": "king"}, content_type=json).status_code == 422
    refused = api.patch(f"{base}/members/{owner.pk}", {"role": "viewer"}, content_type=json)
    assert refused.status_code == 400
    assert "last owner" in refused.json()["detail"]
    assert api.patch(base, {"name": "Lab notes"}, content_type=json).json()["name"] == "Lab notes"
    # The member leaves by themselves; then the library is gone for them at once.
    assert as_friend.delete(member).status_code == 204
    assert as_friend.get(base).status_code == 404
    assert api.delete(f"{base}/members/{stranger.pk}").status_code == 404

    personal = Library.objects.personal(owner)
    refused = api.delete(f"/api/libraries/{personal.pk}")
    assert (refused.status_code, refused.json()["detail"]) == (
        400,
        "A personal library cannot be deleted: your uploads go there.",
    )
    assert api.delete(base).status_code == 204
    assert api.get(base).status_code == 404


@pytest.mark.sqlite_pass
def test_the_admin_lists_libraries_and_keeps_their_rules(db: None, logged_in: LoggedIn) -> None:
    owner, viewer = user_make(), user_make()
    library = _shared(owner, (viewer, Role.VIEWER))
    document_row(library, owner, "Kept")
    staff = logged_in(staff_make())
    listed = staff.get(reverse("admin:documents_library_changelist"), {"q": "Team"})
    assert listed.status_code == 200
    assert [
        (row.name, row.n_members, row.n_documents) for row in listed.context["cl"].result_list
    ] == [("Team", 2, 1)]
    change = reverse("admin:documents_library_change", args=[library.pk])
    page = staff.get(change)
    assert page.status_code == 200
    assert b'id="id_memberships-0-role"' in page.content
    assert b"/delete/" not in page.content  # it holds a document
    assert staff.get(reverse("admin:documents_membership_changelist")).status_code == 200

    # Making the owner a viewer would leave no owner: the form says so and nothing changes.
    members = list(Membership.objects.filter(library=library).order_by("pk"))
    form = {
        "name": "Team",
        "memberships-TOTAL_FORMS": str(len(members)),
        "memberships-INITIAL_FORMS": str(len(members)),
        "memberships-MIN_NUM_FORMS": "0",
        "memberships-MAX_NUM_FORMS": "1000",
    }
    for index, membership in enumerate(members):
        form |= {
            f"memberships-{index}-id": str(membership.pk),
            f"memberships-{index}-library": str(library.pk),
            f"memberships-{index}-user": str(membership.user_id),
            f"memberships-{index}-role": "viewer",
        }
    response = staff.post(change, form)
    assert response.status_code == 200
    assert "A library needs at least one owner." in response.content.decode()
    assert _membership(library, owner).role == Role.OWNER


def test_a_number_too_large_for_the_database_is_no_library_or_page(
    api_for: object, logged_in: LoggedIn, tmp_path: Path, settings: object
) -> None:
    # The schemathesis fuzz once sent library=800750772145352081408: SQLite cannot bind it, and
    # the answer was a 500.
    settings.MEDIA_ROOT = tmp_path  # type: ignore[attr-defined]
    person = user_make()
    huge = "800750772145352081408"
    client = logged_in(person)
    assert client.get(reverse("documents:list"), {"library": huge}).status_code == 200
    assert client.get(reverse("search:search"), {"q": "x", "library": huge}).status_code == 200
    pdf = SimpleUploadedFile("report.pdf", report_pdf(tmp_path).read_bytes())
    upload = client.post(reverse("documents:upload_file"), {"file": pdf, "library": huge})
    assert upload.status_code == 404
    document = Document.objects.create(owner=person, title="t", sha256="0" * 64, size_bytes=1)
    jump = client.get(reverse("documents:page_jump", args=[document.id]), {"number": huge})
    assert jump.status_code == 302
    api = api_for(person)  # type: ignore[operator]
    for url in ("/api/documents", "/api/search"):
        assert api.get(url, {"q": "x", "library": huge}).status_code == 422, url
    refused = api.post("/api/documents", {"file": pdf, "library": huge})
    assert refused.status_code == 422

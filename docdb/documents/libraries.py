"""Who may see and change what: libraries, their members and their roles.

Every document belongs to one library; a person sees the documents of the libraries they are a
member of, and changes them when their role there allows it. Every check reads the membership
rows, so adding, removing or demoting a member takes effect on that person's next request.
"""

from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet

from docdb.documents.models import ROLE_RANK, Document, Library, Membership, Role


def libraries_visible(*, user: User) -> QuerySet[Library]:
    """The libraries the person is a member of, in any role."""
    if not user.is_authenticated:
        return Library.objects.none()
    return Library.objects.filter(memberships__user=user)


def library_ids_visible(*, user: User) -> list[int]:
    """The ids of the person's libraries: what a search filters Weaviate by."""
    return list(libraries_visible(user=user).values_list("id", flat=True))


def libraries_with_role(*, user: User, role: Role) -> QuerySet[Library]:
    """The person's libraries where their role is `role` or above."""
    if not user.is_authenticated:
        return Library.objects.none()
    roles = [r for r, rank in ROLE_RANK.items() if rank >= ROLE_RANK[role]]
    return Library.objects.filter(memberships__user=user, memberships__role__in=roles)


def library_role(*, user: User, library_id: int) -> Role | None:
    """The person's role in the library, or None when they are not a member."""
    if not user.is_authenticated:
        return None
    role = (
        Membership.objects.filter(user=user, library_id=library_id)
        .values_list("role", flat=True)
        .first()
    )
    return Role(role) if role else None


def role_allows(role: Role | None, needed: Role) -> bool:
    return role is not None and ROLE_RANK[role] >= ROLE_RANK[needed]


def documents_visible(*, user: User) -> QuerySet[Document]:
    """The documents the person may see: those of their libraries."""
    return Document.objects.filter(library__in=libraries_visible(user=user))


class ChangeRefused(PermissionDenied):
    """The person sees the document but their role in its library does not let them change
    it; the message is fit to show."""


def change_refusal(*, user: User, library: Library) -> str:
    """Why the person may not change the library's documents ("" when they may)."""
    if role_allows(library_role(user=user, library_id=library.id), Role.EDITOR):
        return ""
    return (
        f"You can read the documents of the library “{library.name}” but not change them: "
        "your role there is viewer. An owner of the library can make you an editor."
    )


def document_change_check(*, user: User, document: Document) -> None:
    """Raise ChangeRefused unless the person may change the document (one they can see)."""
    refusal = change_refusal(user=user, library=document.library)
    if refusal:
        raise ChangeRefused(refusal)


def library_for_upload(*, user: User, library_id: int | None) -> Library:
    """The library an upload goes to: the one chosen, else the person's personal library.

    Raises ChangeRefused when the person may not add documents there, and Library.DoesNotExist
    when they cannot see it (a stranger's library reads as one that does not exist).
    """
    if library_id is None:
        return Library.objects.personal(user)
    library = libraries_visible(user=user).get(id=library_id)
    refusal = change_refusal(user=user, library=library)
    if refusal:
        raise ChangeRefused(refusal)
    return library

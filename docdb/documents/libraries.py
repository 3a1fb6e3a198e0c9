"""Who may see and change what: libraries, their members and their roles.

Every document belongs to one library; a person sees the documents of the libraries they are a
member of, and changes them when their role there allows it. Every check reads the membership
rows, so adding, removing or demoting a member takes effect on that person's next request.
"""

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet

from docdb.documents.models import ROLE_RANK, Document, Library, Membership, Role


def libraries_visible(*, user: User) -> QuerySet[Library]:
    """The libraries the person is a member of, in any role."""
    if not user.is_authenticated:
        return Library.objects.none()
    return Library.objects.filter(memberships__user=user)


@dataclass(frozen=True)
class LibraryChoice:
    """A library as a person picks it in a list: its id and what the option says."""

    id: int
    label: str


def library_choices(libraries: Iterable[Library], *, viewer: User) -> list[LibraryChoice]:
    """The libraries as options: the personal one first, then by name.

    Two libraries may share a name (two teams' "Archive"), and a person in both must not upload
    to the wrong team's by mistake: such names say whose library it is (yours, or its longest
    standing owner's), and its number where even that is the same.
    """
    ordered = sorted(
        libraries,
        key=lambda library: (library.personal_of_id is None, library.name.casefold(), library.pk),
    )
    names = Counter(library.name.casefold() for library in ordered)
    clashing = [library for library in ordered if names[library.name.casefold()] > 1]
    owners = _first_owners([library.pk for library in clashing if library.personal_of_id is None])
    labels = {library.pk: library.name for library in ordered}
    for library in clashing:
        whose = "yours" if library.personal_of_id == viewer.pk else owners.get(library.pk)
        labels[library.pk] = f"{library.name} ({whose or 'no owner'})"
    repeated = Counter(label.casefold() for label in labels.values())
    return [
        LibraryChoice(id=pk, label=label if repeated[label.casefold()] == 1 else f"{label} #{pk}")
        for pk, label in labels.items()
    ]


def _first_owners(library_ids: list[int]) -> dict[int, str]:
    """Each library's longest-standing owner's username."""
    if not library_ids:
        return {}
    owners: dict[int, str] = {}
    rows = Membership.objects.filter(library_id__in=library_ids, role=Role.OWNER)
    for library_id, username in rows.order_by("created_at", "id").values_list(
        "library_id", "user__username"
    ):
        owners.setdefault(library_id, username)
    return owners


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

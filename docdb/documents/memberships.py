"""Managing libraries: create, rename and delete them; add members, change their roles, remove
them, leave.

Who may do what: any member leaves; an owner does everything else. Two rules hold whatever the
order of the changes: a library always keeps an owner, and a personal library has its person as
its only member. Every change takes the library's row lock first, so two owners demoting each
other at once cannot leave it with none.
"""

from dataclasses import dataclass

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Case, Count, IntegerField, OuterRef, QuerySet, Subquery, Value, When
from django.db.models.functions import Coalesce, Lower

from docdb.documents.libraries import library_choices, library_role, role_allows
from docdb.documents.models import (
    MAX_LIBRARY_NAME_LENGTH,
    ROLE_RANK,
    Document,
    Library,
    Membership,
    Role,
)
from docdb.documents.names import name_clean

# Libraries by name, as their model orders them.
_BY_NAME = (Lower("name"), "id")


class LibraryRejected(ValueError):
    """A change to a library or its members that cannot be made; the message is fit to show."""


class LibraryForbidden(LibraryRejected):
    """The person's role in the library does not allow the change."""


SHARE_PERSONAL = (
    "Your personal library is yours alone: make a shared library to share documents with others."
)


def library_name_clean(name: str) -> str:
    return name_clean(
        name, noun="library", max_length=MAX_LIBRARY_NAME_LENGTH, rejected=LibraryRejected
    )


@dataclass(frozen=True)
class LibraryRow:
    """A library as its list shows it to one person."""

    library: Library
    role: Role
    members: int
    documents: int
    # Its name, and whose it is where two of the person's libraries share it (library_choices).
    label: str = ""


def _count_of(queryset: QuerySet[Membership] | QuerySet[Document]) -> Subquery:
    counted = queryset.values("library").annotate(n=Count("pk")).values("n")
    return Subquery(counted, output_field=IntegerField())


def libraries_listed(*, user: User) -> list[LibraryRow]:
    """The person's libraries, their personal one first, with their role and the counts."""
    mine = Membership.objects.filter(library=OuterRef("pk"), user=user)
    libraries = (
        Library.objects.filter(memberships__user=user)
        .annotate(
            my_role=Subquery(mine.values("role")[:1]),
            n_members=Coalesce(_count_of(Membership.objects.filter(library=OuterRef("pk"))), 0),
            n_documents=Coalesce(_count_of(Document.objects.filter(library=OuterRef("pk"))), 0),
        )
        .order_by(Case(When(personal_of=user, then=Value(0)), default=Value(1)), *_BY_NAME)
    )
    listed = list(libraries)
    labels = {choice.id: choice.label for choice in library_choices(listed, viewer=user)}
    return [
        LibraryRow(
            library=library,
            role=Role(library.my_role),
            members=library.n_members,
            documents=library.n_documents,
            label=labels[library.pk],
        )
        for library in listed
    ]


def library_row(*, user: User, library: Library) -> LibraryRow:
    """One of the person's libraries as its list shows it."""
    role = library_role(user=user, library_id=library.pk)
    if role is None:
        raise Membership.DoesNotExist(f"{user} is not a member of library {library.pk}")
    return LibraryRow(
        library=library,
        role=role,
        members=library.memberships.count(),
        documents=library.documents.count(),
    )


def library_members(*, library: Library) -> QuerySet[Membership]:
    """The members, owners first, then by name."""
    first = Case(
        *(When(role=role, then=Value(-rank)) for role, rank in ROLE_RANK.items()),
        output_field=IntegerField(),
    )
    members = Membership.objects.filter(library=library).select_related("user")
    return members.order_by(first, "user__username")


def _lock(library: Library, by: User, needed: Role) -> None:
    """Lock the library's row until the transaction ends, then check that `by` may act: a
    role changed meanwhile is read after the change."""
    locked = Library.objects.select_for_update().filter(pk=library.pk).first()
    if locked is None:
        raise LibraryRejected(f"“{library.name}” was deleted meanwhile.")
    if not role_allows(library_role(user=by, library_id=library.pk), needed):
        raise LibraryForbidden(f"Only an owner of “{library.name}” can change it.")


def _owners_left(library: Library, *, without: Membership) -> bool:
    owners = Membership.objects.filter(library=library, role=Role.OWNER).exclude(pk=without.pk)
    return owners.exists()


def library_create(*, by: User, name: str) -> Library:
    """A shared library with its maker as its owner."""
    name = library_name_clean(name)
    with transaction.atomic():
        library = Library.objects.create(name=name)
        Membership.objects.create(library=library, user=by, role=Role.OWNER)
    return library


def library_rename(*, library: Library, by: User, name: str) -> Library:
    with transaction.atomic():
        _lock(library, by, Role.OWNER)
        name = library_name_clean(name)
        Library.objects.filter(pk=library.pk).update(name=name)
    library.name = name
    return library


def library_delete(*, library: Library, by: User) -> None:
    """Delete an empty library. One that holds documents is refused rather than emptied: they
    may be other members' uploads, which one click should not take from them, and deleting many
    documents (their files and search entries) is the bulk action's work, with its report of
    what was left."""
    if library.personal_of_id is not None:
        raise LibraryRejected("A personal library cannot be deleted: your uploads go there.")
    with transaction.atomic():
        _lock(library, by, Role.OWNER)
        held = Document.objects.filter(library=library).count()
        if held:
            raise LibraryRejected(
                f"“{library.name}” still holds {held} document{'s' if held != 1 else ''}: "
                "move them to another library or delete them first."
            )
        library.delete()


def _person_find(who: str) -> User:
    """The active person with this username, else with this email address."""
    who = who.strip()
    people = User.objects.filter(is_active=True)
    found = people.filter(username=who).first()
    if found is not None:
        return found
    if "@" in who:
        by_email = list(people.filter(email__iexact=who)[:2])
        if len(by_email) == 1:
            return by_email[0]
        if by_email:
            raise LibraryRejected(
                f"Several people have the email address “{who}”: give the username instead."
            )
    raise LibraryRejected(f"Nobody here has the username or email address “{who[:150]}”.")


def member_add(*, library: Library, by: User, who: str, role: Role) -> Membership:
    """Make the person named by username or email address a member, with `role`."""
    if library.personal_of_id is not None:
        raise LibraryRejected(SHARE_PERSONAL)
    with transaction.atomic():
        # The role first: only owners learn whether a name belongs to someone.
        _lock(library, by, Role.OWNER)
        person = _person_find(who)
        current = Membership.objects.filter(library=library, user=person).first()
        if current is not None:
            raise LibraryRejected(
                f"{person.username} is already a member ({current.get_role_display().lower()})."
            )
        return Membership.objects.create(library=library, user=person, role=role)


def member_role_set(*, membership: Membership, by: User, role: Role) -> Membership:
    library = membership.library
    if library.personal_of_id is not None:
        raise LibraryRejected(SHARE_PERSONAL)
    with transaction.atomic():
        _lock(library, by, Role.OWNER)
        current = Membership.objects.filter(pk=membership.pk).values_list("role", flat=True).first()
        if current is None:
            raise LibraryRejected(f"{membership.user.username} is no longer a member.")
        demoted = current == Role.OWNER and role != Role.OWNER
        if demoted and not _owners_left(library, without=membership):
            raise LibraryRejected(
                f"{membership.user.username} is the last owner of “{library.name}”: make "
                "someone else an owner first."
            )
        Membership.objects.filter(pk=membership.pk).update(role=role)
    membership.role = role
    return membership


def member_remove(*, membership: Membership, by: User) -> None:
    """Take the member out: an owner removes anyone, a member removes themselves (leaves)."""
    library = membership.library
    leaving = membership.user_id == by.pk
    if library.personal_of_id is not None:
        raise LibraryRejected("A personal library keeps its person: it cannot be left.")
    with transaction.atomic():
        _lock(library, by, Role.VIEWER if leaving else Role.OWNER)
        current = Membership.objects.filter(pk=membership.pk).values_list("role", flat=True).first()
        if current is None:
            return  # removed meanwhile (another tab)
        if current == Role.OWNER and not _owners_left(library, without=membership):
            if leaving:
                raise LibraryRejected(
                    f"You are the last owner of “{library.name}”: make someone else an owner "
                    "first, or delete the library."
                )
            raise LibraryRejected(
                f"{membership.user.username} is the last owner of “{library.name}”."
            )
        membership.delete()

"""The API's libraries: list and make them, rename and delete them, and manage their members.

The rules and messages are the web pages' (`documents.memberships`): a library someone is not a
member of answers 404, a change their role does not allow 403, a refused change 400.
"""

from datetime import datetime
from typing import Any

from django.shortcuts import get_object_or_404
from django.urls import reverse
from ninja import Field, Path, Router, Schema, Status

from docdb.api.common import COMMON, ApiRequest, Error
from docdb.documents.libraries import libraries_visible
from docdb.documents.memberships import (
    LibraryForbidden,
    LibraryRejected,
    LibraryRow,
    libraries_listed,
    library_create,
    library_delete,
    library_members,
    library_rename,
    library_row,
    member_add,
    member_remove,
    member_role_set,
)
from docdb.documents.models import ID_MAX, Library, Membership, Role

router = Router(tags=["libraries"])

# Ids as the database holds them: a larger number names nothing (and SQLite cannot compare it).
LibraryId = Path(..., ge=1, le=ID_MAX)
UserId = Path(..., ge=1, le=ID_MAX)
# Names are checked by the service (trimmed, 1 to 100 characters); this only bounds the input.
_NAME_INPUT_MAX = 1000


class LibraryOut(Schema):
    id: int
    name: str
    # A person's own library: their uploads go there, and it cannot be shared or deleted.
    personal: bool
    # Your role in it: viewer (search and read), editor (also change documents), owner (also
    # manage the library and its members).
    role: Role
    members: int
    documents: int
    url: str

    @staticmethod
    def from_row(row: LibraryRow) -> "LibraryOut":
        library = row.library
        return LibraryOut(
            id=library.pk,
            name=library.name,
            personal=library.personal_of_id is not None,
            role=row.role,
            members=row.members,
            documents=row.documents,
            url=reverse("libraries:detail", args=[library.pk]),
        )


class LibraryList(Schema):
    libraries: list[LibraryOut]


class LibraryIn(Schema):
    name: str = Field(..., max_length=_NAME_INPUT_MAX)


class MemberOut(Schema):
    user_id: int
    username: str
    role: Role
    since: datetime

    @staticmethod
    def from_membership(membership: Membership) -> "MemberOut":
        return MemberOut(
            user_id=membership.user_id,
            username=membership.user.username,
            role=Role(membership.role),
            since=membership.created_at,
        )


class MemberList(Schema):
    members: list[MemberOut]


class MemberIn(Schema):
    # The person's username, or their email address.
    who: str = Field(..., max_length=254)
    role: Role = Role.VIEWER


class MemberPatch(Schema):
    role: Role


def _library_get(request: ApiRequest, library_id: int) -> Library:
    return get_object_or_404(libraries_visible(user=request.auth), pk=library_id)


def _member_get(request: ApiRequest, library_id: int, user_id: int) -> Membership:
    library = _library_get(request, library_id)
    return get_object_or_404(
        Membership.objects.select_related("user", "library"), library=library, user_id=user_id
    )


def _refusal(exc: LibraryRejected) -> Status[Error]:
    return Status(403 if isinstance(exc, LibraryForbidden) else 400, Error(detail=str(exc)))


@router.get("", response={200: LibraryList, **COMMON})
def libraries_list(request: ApiRequest) -> LibraryList:
    """Your libraries, your personal one first, with your role in each."""
    Library.objects.personal(request.auth)  # listed even before the first upload makes it
    rows = libraries_listed(user=request.auth)
    return LibraryList(libraries=[LibraryOut.from_row(row) for row in rows])


@router.post("", response={201: LibraryOut, 400: Error, **COMMON})
def libraries_create(request: ApiRequest, body: LibraryIn) -> Status[Any]:
    """Make a shared library; you are its owner."""
    try:
        library = library_create(by=request.auth, name=body.name)
    except LibraryRejected as exc:
        return _refusal(exc)
    return Status(201, LibraryOut.from_row(library_row(user=request.auth, library=library)))


@router.get("/{library_id}", response={200: LibraryOut, 404: Error, **COMMON})
def libraries_get(request: ApiRequest, library_id: int = LibraryId) -> LibraryOut:
    library = _library_get(request, library_id)
    return LibraryOut.from_row(library_row(user=request.auth, library=library))


@router.patch(
    "/{library_id}", response={200: LibraryOut, 400: Error, 403: Error, 404: Error, **COMMON}
)
def libraries_rename(
    request: ApiRequest, body: LibraryIn, library_id: int = LibraryId
) -> Status[Any]:
    """Rename the library (owners)."""
    library = _library_get(request, library_id)
    try:
        library_rename(library=library, by=request.auth, name=body.name)
    except LibraryRejected as exc:
        return _refusal(exc)
    return Status(200, LibraryOut.from_row(library_row(user=request.auth, library=library)))


@router.delete("/{library_id}", response={204: None, 400: Error, 403: Error, 404: Error, **COMMON})
def libraries_delete(request: ApiRequest, library_id: int = LibraryId) -> Status[Any]:
    """Delete an empty shared library (owners); one that holds documents is refused."""
    library = _library_get(request, library_id)
    try:
        library_delete(library=library, by=request.auth)
    except LibraryRejected as exc:
        return _refusal(exc)
    return Status(204, None)


@router.get("/{library_id}/members", response={200: MemberList, 404: Error, **COMMON})
def members_list(request: ApiRequest, library_id: int = LibraryId) -> MemberList:
    """The library's members, owners first."""
    library = _library_get(request, library_id)
    members = library_members(library=library)
    return MemberList(members=[MemberOut.from_membership(member) for member in members])


@router.post(
    "/{library_id}/members",
    response={201: MemberOut, 400: Error, 403: Error, 404: Error, **COMMON},
)
def members_add(request: ApiRequest, body: MemberIn, library_id: int = LibraryId) -> Status[Any]:
    """Add a person by username or email address, with a role (owners)."""
    library = _library_get(request, library_id)
    try:
        membership = member_add(library=library, by=request.auth, who=body.who, role=body.role)
    except LibraryRejected as exc:
        return _refusal(exc)
    return Status(201, MemberOut.from_membership(membership))


@router.patch(
    "/{library_id}/members/{user_id}",
    response={200: MemberOut, 400: Error, 403: Error, 404: Error, **COMMON},
)
def members_role_set(
    request: ApiRequest,
    body: MemberPatch,
    library_id: int = LibraryId,
    user_id: int = UserId,
) -> Status[Any]:
    """Change a member's role (owners); the last owner cannot be made anything else."""
    membership = _member_get(request, library_id, user_id)
    try:
        member_role_set(membership=membership, by=request.auth, role=body.role)
    except LibraryRejected as exc:
        return _refusal(exc)
    return Status(200, MemberOut.from_membership(membership))


@router.delete(
    "/{library_id}/members/{user_id}",
    response={204: None, 400: Error, 403: Error, 404: Error, **COMMON},
)
def members_remove(
    request: ApiRequest, library_id: int = LibraryId, user_id: int = UserId
) -> Status[Any]:
    """Remove a member (owners), or leave the library (your own user id; any member)."""
    membership = _member_get(request, library_id, user_id)
    try:
        member_remove(membership=membership, by=request.auth)
    except LibraryRejected as exc:
        return _refusal(exc)
    return Status(204, None)

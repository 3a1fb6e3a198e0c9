"""The libraries pages: a person's libraries, one library's members, and their management.

A library someone is not a member of answers 404 at every URL, exactly like one that does not
exist; a member whose role does not allow a change gets 403.
"""

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from docdb.documents.libraries import libraries_visible, library_role, role_allows
from docdb.documents.memberships import (
    SHARE_PERSONAL,
    LibraryForbidden,
    LibraryRejected,
    libraries_listed,
    library_create,
    library_delete,
    library_members,
    library_rename,
    member_add,
    member_remove,
    member_role_set,
)
from docdb.documents.models import MAX_LIBRARY_NAME_LENGTH, Library, Membership, Role
from docdb.documents.requests import AuthenticatedRequest

# "bob is now an editor."
_AS_ROLE = {Role.VIEWER: "a viewer", Role.EDITOR: "an editor", Role.OWNER: "an owner"}


def _library_get(request: AuthenticatedRequest, library_id: int) -> Library:
    return get_object_or_404(libraries_visible(user=request.user), pk=library_id)


def _owner_library_get(request: AuthenticatedRequest, library_id: int) -> Library:
    library = _library_get(request, library_id)
    if not role_allows(library_role(user=request.user, library_id=library.pk), Role.OWNER):
        raise PermissionDenied(f"Only an owner of “{library.name}” can change it.")
    return library


def _role_of(request: AuthenticatedRequest) -> Role | None:
    try:
        return Role(request.POST.get("role", ""))
    except ValueError:
        return None


@require_GET
def library_list(request: AuthenticatedRequest) -> HttpResponse:
    Library.objects.personal(request.user)  # listed even before the first upload makes it
    return render(
        request,
        "libraries/list.html",
        {"rows": libraries_listed(user=request.user), "name_max": MAX_LIBRARY_NAME_LENGTH},
    )


@require_POST
def library_create_view(request: AuthenticatedRequest) -> HttpResponse:
    try:
        library = library_create(by=request.user, name=request.POST.get("name", ""))
    except LibraryRejected as exc:
        messages.error(request, str(exc))
        return redirect("libraries:list")
    messages.success(request, f"“{library.name}” is made: add the people to share it with.")
    return redirect("libraries:detail", library_id=library.pk)


@require_GET
def library_detail(request: AuthenticatedRequest, library_id: int) -> HttpResponse:
    library = _library_get(request, library_id)
    role = library_role(user=request.user, library_id=library.pk)
    return render(
        request,
        "libraries/detail.html",
        {
            "library": library,
            "role_as": _AS_ROLE[role] if role else "",
            "is_owner": role_allows(role, Role.OWNER),
            "members": library_members(library=library),
            "documents": library.documents.count(),
            "roles": Role.choices,
            "name_max": MAX_LIBRARY_NAME_LENGTH,
            "share_personal": SHARE_PERSONAL,
        },
    )


def _refused(request: AuthenticatedRequest, exc: LibraryRejected) -> None:
    if isinstance(exc, LibraryForbidden):
        raise PermissionDenied(str(exc)) from exc
    messages.error(request, str(exc))


@require_POST
def library_rename_view(request: AuthenticatedRequest, library_id: int) -> HttpResponse:
    library = _owner_library_get(request, library_id)
    try:
        library_rename(library=library, by=request.user, name=request.POST.get("name", ""))
    except LibraryRejected as exc:
        _refused(request, exc)
    else:
        messages.success(request, f"Renamed to “{library.name}”.")
    return redirect("libraries:detail", library_id=library.pk)


@require_http_methods(["GET", "POST"])
def library_delete_view(request: AuthenticatedRequest, library_id: int) -> HttpResponse:
    library = _owner_library_get(request, library_id)
    if request.method == "GET":
        return render(
            request,
            "libraries/delete.html",
            {"library": library, "documents": library.documents.count()},
        )
    try:
        library_delete(library=library, by=request.user)
    except LibraryRejected as exc:
        _refused(request, exc)
        return redirect("libraries:detail", library_id=library.pk)
    messages.success(request, f"The library “{library.name}” was deleted.")
    return redirect("libraries:list")


@require_http_methods(["GET", "POST"])
def library_leave_view(request: AuthenticatedRequest, library_id: int) -> HttpResponse:
    library = _library_get(request, library_id)
    membership = get_object_or_404(Membership, library=library, user=request.user)
    if request.method == "GET":
        return render(request, "libraries/leave.html", {"library": library})
    try:
        member_remove(membership=membership, by=request.user)
    except LibraryRejected as exc:
        _refused(request, exc)
        return redirect("libraries:detail", library_id=library.pk)
    messages.success(request, f"You left “{library.name}”.")
    return redirect("libraries:list")


@require_POST
def member_add_view(request: AuthenticatedRequest, library_id: int) -> HttpResponse:
    library = _owner_library_get(request, library_id)
    role = _role_of(request)
    try:
        if role is None:
            raise LibraryRejected("Choose a role: viewer, editor or owner.")
        membership = member_add(
            library=library, by=request.user, who=request.POST.get("who", ""), role=role
        )
    except LibraryRejected as exc:
        _refused(request, exc)
    else:
        messages.success(
            request, f"{membership.user.username} is now a member, as {_AS_ROLE[role]}."
        )
    return redirect("libraries:detail", library_id=library.pk)


def _member_get(request: AuthenticatedRequest, library_id: int, user_id: int) -> Membership:
    library = _owner_library_get(request, library_id)
    return get_object_or_404(
        Membership.objects.select_related("user", "library"), library=library, user_id=user_id
    )


@require_POST
def member_role_view(request: AuthenticatedRequest, library_id: int, user_id: int) -> HttpResponse:
    membership = _member_get(request, library_id, user_id)
    role = _role_of(request)
    try:
        if role is None:
            raise LibraryRejected("Choose a role: viewer, editor or owner.")
        member_role_set(membership=membership, by=request.user, role=role)
    except LibraryRejected as exc:
        _refused(request, exc)
    else:
        messages.success(request, f"{membership.user.username} is now {_AS_ROLE[role]}.")
    return redirect("libraries:detail", library_id=library_id)


@require_POST
def member_remove_view(
    request: AuthenticatedRequest, library_id: int, user_id: int
) -> HttpResponse:
    membership = _member_get(request, library_id, user_id)
    try:
        member_remove(membership=membership, by=request.user)
    except LibraryRejected as exc:
        _refused(request, exc)
    else:
        messages.success(request, f"{membership.user.username} is no longer a member.")
        if membership.user_id == request.user.pk:
            return redirect("libraries:list")
    return redirect("libraries:detail", library_id=library_id)

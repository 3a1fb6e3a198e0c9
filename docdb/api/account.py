"""A person's own account page: change the password, create and revoke API tokens, delete the
account (`documents.people`, as the admin does).

Tokens are the API's, so their pages live with it; each person sees and revokes only their own.
The login middleware keeps these pages to logged-in people.
"""

from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth import views as auth_views
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from docdb.api.models import ApiToken
from docdb.documents.people import PersonNotDeleted, person_delete, person_delete_plan
from docdb.documents.requests import AuthenticatedRequest

app_name = "account"

TOKEN_NAME_MAX: int = ApiToken._meta.get_field("name").max_length or 100


@never_cache
def account(request: AuthenticatedRequest) -> HttpResponse:
    return _page(request)


@never_cache
@require_POST
def token_create(request: AuthenticatedRequest) -> HttpResponse:
    name = " ".join(request.POST.get("name", "").split())
    if not name or len(name) > TOKEN_NAME_MAX:
        error = f"Give the token a name of 1 to {TOKEN_NAME_MAX} characters."
        return _page(request, token_error=error, status=400)
    _token, raw = ApiToken.issue(user=request.user, name=name)
    # Shown in this answer only: the database keeps its hash (never cached, never redirected).
    return _page(request, new_token=raw, new_token_name=name, status=201)


@require_POST
def token_revoke(request: AuthenticatedRequest, token_id: int) -> HttpResponse:
    # Someone else's token answers like one that does not exist.
    token = get_object_or_404(ApiToken, pk=token_id, user=request.user)
    token.revoke()
    messages.success(request, f"The token “{token.name}” is revoked: it no longer works.")
    return redirect("account:account")


@never_cache
@require_POST
def account_delete(request: AuthenticatedRequest) -> HttpResponse:
    # The password again: a session left open on a shared computer does not delete the account.
    if not request.user.check_password(request.POST.get("password", "")):
        error = "That is not your password: nothing was deleted."
        return _page(request, delete_error=error, status=400)
    try:
        person_delete(person=request.user)
    except PersonNotDeleted as exc:
        refusal = person_delete_plan(person=request.user).own_refusal
        return _page(request, delete_error=refusal or str(exc), status=400)
    logout(request)
    messages.success(request, "Your account was deleted.")
    return redirect("login")


def _page(request: AuthenticatedRequest, *, status: int = 200, **context: object) -> HttpResponse:
    tokens = ApiToken.objects.filter(user=request.user).order_by("revoked_at", "-created_at")
    plan = person_delete_plan(person=request.user)
    kept = sum(len(handover.documents) for handover in plan.handovers)
    return render(
        request,
        "account/account.html",
        {
            "tokens": tokens,
            "token_name_max": TOKEN_NAME_MAX,
            "deletion": plan,
            "documents_kept": kept,
            **context,
        },
        status=status,
    )


urlpatterns = [
    path("", account, name="account"),
    path("tokens/", token_create, name="token_create"),
    path("tokens/<int:token_id>/revoke/", token_revoke, name="token_revoke"),
    path("delete/", account_delete, name="delete"),
    path(
        "password/",
        auth_views.PasswordChangeView.as_view(
            template_name="account/password_change.html",
            success_url=reverse_lazy("account:password_changed"),
        ),
        name="password_change",
    ),
    path(
        "password/changed/",
        auth_views.PasswordChangeDoneView.as_view(template_name="account/password_changed.html"),
        name="password_changed",
    ),
]

"""The Permissions-Policy header on every response: DocDB uses no camera, microphone, location
or other powerful browser feature, so none is allowed, for its pages or anything they embed.
(The Content-Security-Policy comes from django-csp, set in settings.)"""

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse


class PermissionsPolicyMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.policy = ", ".join(f"{feature}=()" for feature in settings.PERMISSIONS_POLICY_DENIED)

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response.headers.setdefault("Permissions-Policy", self.policy)
        return response


def client_address(request: HttpRequest) -> str | None:
    """The address a login attempt is counted by (django-axes's AXES_CLIENT_IP_CALLABLE).

    The connection's own address, unless DOCDB_TRUST_X_FORWARDED_FOR says a proxy in front sets
    X-Forwarded-For itself: then the last address of that header, the one the proxy appended
    (those before it are whatever the client sent, and would let it dodge a lockout)."""
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    if settings.TRUST_X_FORWARDED_FOR and forwarded.strip():
        return forwarded.split(",")[-1].strip()
    address = request.META.get("REMOTE_ADDR")
    return str(address) if address else None

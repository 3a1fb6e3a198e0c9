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

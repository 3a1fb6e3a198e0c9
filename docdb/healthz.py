"""`GET /healthz` answers before the host check, the HTTPS redirect and the login requirement.

Docker's health check (and a load balancer's) asks http://127.0.0.1:8000/healthz: an address that
need not be in DOCDB_ALLOWED_HOSTS, over plain HTTP even when DOCDB_HTTPS redirects everyone else.
It says only that this process serves requests; /admin/operations/ tells how the services are.
"""

from collections.abc import Callable

from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse, JsonResponse

PATH = "/healthz"


@login_not_required
def health(_request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


class HealthzMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path_info == PATH and request.method in ("GET", "HEAD"):
            return health(request)
        return self.get_response(request)

from django.contrib.auth.models import User
from django.http import HttpRequest


class AuthenticatedRequest(HttpRequest):
    """A request past the login middleware: `user` is a real user, never anonymous."""

    user: User

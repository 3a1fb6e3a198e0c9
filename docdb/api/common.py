"""What every part of the API shares: its error bodies and the authenticated request."""

from typing import Any

from django.contrib.auth.models import User
from django.http import HttpRequest
from ninja import Schema


class Error(Schema):
    detail: str


class InvalidRequest(Schema):
    """A parameter or field is missing or malformed; `detail` lists each problem."""

    detail: list[dict[str, Any]]


# Every operation can answer these: no or a bad token, and input that does not fit its schema.
COMMON = {401: Error, 422: InvalidRequest}


class ApiRequest(HttpRequest):
    """A request that passed TokenAuth: `auth` is the token's user."""

    auth: User

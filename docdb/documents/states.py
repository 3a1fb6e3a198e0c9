"""State changes of a Document, each claimed with a conditional update.

Two workers, a retried task or a double click can race for the same document; only the caller
whose UPDATE matched the expected state wins, the others see False and step aside.
"""

import uuid
from typing import Any

from django.utils import timezone

from docdb.documents.models import TRANSITIONS, Document, Status


class InvalidTransition(Exception):
    pass


def document_transition(
    *, document_id: uuid.UUID, to: Status, fields: dict[str, Any] | None = None
) -> bool:
    """Move the document to `to` from any state allowed to reach it. True if this call did."""
    sources = [state for state, targets in TRANSITIONS.items() if to in targets]
    if not sources:
        raise InvalidTransition(f"Nothing may move to {to}")
    updates: dict[str, Any] = {"status": to, "updated_at": timezone.now(), **(fields or {})}
    claimed = Document.objects.filter(id=document_id, status__in=sources).update(**updates)
    return claimed == 1

"""One action on many documents at once (the documents list's selection).

Only documents the person sees are touched: ids of others (or of none) are left out without a
word, so the answer tells nothing about them. Those of a library where the person may only read
are left as they were, with why. Each document goes through the same service as its own
button, and what could not be done is said per document, with why.
"""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from django.contrib.auth.models import User
from django.db import models

from docdb.documents.libraries import change_refusal, documents_visible, libraries_with_role
from docdb.documents.models import Document, Library, Role, Status
from docdb.documents.services import MoveRefused, document_delete, document_move, document_retry
from docdb.documents.tags import document_tag_add, document_tag_remove, tag_name_clean
from docdb.weaviate_store import WeaviateUnavailable

# One form posts at most a list page of ids; a few pages' worth is plenty.
MAX_BULK_DOCUMENTS = 200


class BulkAction(models.TextChoices):
    TAG = "tag", "Add a tag"
    UNTAG = "untag", "Remove a tag"
    RERUN = "rerun", "Process again"
    DELETE = "delete", "Delete"
    MOVE = "move", "Move to library"


@dataclass
class BulkOutcome:
    done: list[Document] = field(default_factory=list)
    # (document, why it was left as it was)
    skipped: list[tuple[Document, str]] = field(default_factory=list)


def _rerun_refusal(document: Document) -> str:
    """Why a document's own page offers no "Retry" for it ("" when it does)."""
    if not document.is_terminal:
        return "it is already queued or being processed"
    if document.status == Status.READY:
        return "it is ready: there is nothing to process again"
    if document.needs_password:
        return "it needs its password: unlock it on its page"
    if not document.can_retry:
        return "processing the same file again cannot help"
    return ""


def _rerun(document: Document) -> str:
    refusal = _rerun_refusal(document)
    if refusal:
        return refusal
    return "" if document_retry(document=document) else "it is already queued or being processed"


def _delete(document: Document) -> str:
    try:
        document_delete(document=document)
    except WeaviateUnavailable:
        return "the search index is not reachable, so it was not deleted"
    return ""


def _move(document: Document, library: Library | None, user: User) -> str:
    if library is None:
        return "you cannot add documents to the library chosen"
    try:
        moved = document_move(document=document, library=library, user=user)
    except MoveRefused as exc:
        return str(exc)
    except WeaviateUnavailable:
        return "the search index is not reachable, so it was not moved"
    return "" if moved else "it is in that library already"


def _act(
    document: Document, action: BulkAction, tag: str, user: User, library: Library | None
) -> str:
    """Do the action on one document; why it was not done ("" when it was)."""
    refusal = change_refusal(user=user, library=document.library)
    if refusal:
        return refusal
    if action == BulkAction.TAG:
        document_tag_add(document=document, name=tag, user=user)
        return ""
    if action == BulkAction.MOVE:
        return _move(document, library, user)
    if action == BulkAction.UNTAG:
        return "" if document_tag_remove(document=document, name=tag) else "it has no such tag"
    if action == BulkAction.RERUN:
        return _rerun(document)
    return _delete(document)


def documents_bulk(
    *,
    user: User,
    document_ids: Sequence[uuid.UUID],
    action: BulkAction,
    tag: str = "",
    library_id: int | None = None,
) -> BulkOutcome:
    """`library_id`: where MOVE moves the documents (the person must be its editor too)."""
    if action in (BulkAction.TAG, BulkAction.UNTAG):
        tag = tag_name_clean(tag)
    editable = libraries_with_role(user=user, role=Role.EDITOR)
    target = None if library_id is None else editable.filter(id=library_id).first()
    documents = documents_visible(user=user).filter(id__in=document_ids[:MAX_BULK_DOCUMENTS])
    outcome = BulkOutcome()
    for document in documents.select_related("library").order_by("title", "id"):
        reason = _act(document, action, tag, user, target)
        if reason:
            outcome.skipped.append((document, reason))
        else:
            outcome.done.append(document)
    return outcome

"""Tags: a person's own labels on their documents.

A tag belongs to one person and is found by its name without regard to case; nobody else's
tag ever matches a name or an id here, since every lookup starts from the owner.
"""

from collections.abc import Iterable

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, QuerySet

from docdb.documents.models import MAX_TAG_LENGTH, Document, Tag


class TagRejected(ValueError):
    """A tag name that cannot be used; the message is fit to show."""


def tag_name_clean(name: str) -> str:
    """The name as stored: spaces trimmed and runs of them made one."""
    cleaned = " ".join(name.split())
    if not cleaned:
        raise TagRejected("A tag needs a name.")
    if not cleaned.isprintable():
        # Control characters show as nothing, and PostgreSQL refuses NUL in text.
        raise TagRejected("A tag name cannot hold control characters.")
    if len(cleaned) > MAX_TAG_LENGTH:
        raise TagRejected(f"A tag name has at most {MAX_TAG_LENGTH} characters.")
    return cleaned


def tags_of(*, owner: User) -> QuerySet[Tag]:
    """The owner's tags that some document of theirs carries: those offered and filtered by. A
    tag taken off its last document is kept, unseen, and comes back if its name is used again."""
    carried = Document.tags.through.objects.filter(tag_id=OuterRef("pk"))
    return Tag.objects.filter(owner=owner).filter(Exists(carried))


def tag_find(*, owner: User, name: str) -> Tag | None:
    """The owner's tag of this name (any case), if they have one."""
    try:
        name = tag_name_clean(name)
    except TagRejected:
        return None
    return Tag.objects.filter(owner=owner, name__iexact=name).first()


def documents_tagged(
    *, owner: User, documents: QuerySet[Document], name: str
) -> QuerySet[Document]:
    """Those of the documents that carry the owner's tag of this name (none if no such tag)."""
    tag = tag_find(owner=owner, name=name)
    if tag is None:
        return documents.none()
    return documents.filter(tags=tag)


def tag_get_or_create(*, owner: User, name: str) -> Tag:
    name = tag_name_clean(name)
    found = tag_find(owner=owner, name=name)
    if found is not None:
        return found
    try:
        with transaction.atomic():
            return Tag.objects.create(owner=owner, name=name)
    except IntegrityError:
        # The same name was created meanwhile (another tab): the constraint let one through.
        found = tag_find(owner=owner, name=name)
        if found is None:
            raise
        return found


def document_tag_add(*, document: Document, name: str) -> Tag:
    tag = tag_get_or_create(owner=document.owner, name=name)
    document.tags.add(tag)
    return tag


def document_tag_remove(*, document: Document, name: str) -> bool:
    """Take the tag off the document; False if it did not carry it."""
    tag = tag_find(owner=document.owner, name=name)
    if tag is None or not document.tags.filter(id=tag.id).exists():
        return False
    document.tags.remove(tag)
    return True


def document_tags_set(*, document: Document, names: Iterable[str]) -> list[Tag]:
    """Give the document exactly these tags (created for its owner as needed)."""
    cleaned = [tag_name_clean(name) for name in names]
    with transaction.atomic():
        tags = {}
        for name in cleaned:
            tag = tag_get_or_create(owner=document.owner, name=name)
            tags[tag.id] = tag
        document.tags.set(tags.values())
    return sorted(tags.values(), key=lambda tag: tag.name.lower())

"""Tags: a library's labels on its documents, shared by its members.

A tag belongs to one library and is found by its name without regard to case; a document
carries only tags of its own library. Lookups start from a library, or from the libraries the
person can see, so the tag of a library someone is not a member of never matches.
"""

from collections.abc import Iterable

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, QuerySet

from docdb.documents.libraries import libraries_visible
from docdb.documents.models import MAX_TAG_LENGTH, Document, Library, Tag
from docdb.documents.names import name_clean


class TagRejected(ValueError):
    """A tag name that cannot be used; the message is fit to show."""


def tag_name_clean(name: str) -> str:
    return name_clean(name, noun="tag", max_length=MAX_TAG_LENGTH, rejected=TagRejected)


def _carried(tags: QuerySet[Tag]) -> QuerySet[Tag]:
    """Those of the tags that some document carries. A tag taken off its last document is
    kept, unseen, and comes back if its name is used again."""
    carried = Document.tags.through.objects.filter(tag_id=OuterRef("pk"))
    return tags.filter(Exists(carried))


def tags_of(*, user: User, library_id: int | None = None) -> list[Tag]:
    """The tags offered and filtered by: those carried in the person's libraries (or in one of
    them), one per name where two libraries have a tag of the same name."""
    libraries = libraries_visible(user=user)
    if library_id is not None:
        libraries = libraries.filter(id=library_id)
    by_name: dict[str, Tag] = {}
    for tag in _carried(Tag.objects.filter(library__in=libraries)):
        by_name.setdefault(tag.name.lower(), tag)
    return list(by_name.values())


def tags_of_library(*, library: Library) -> QuerySet[Tag]:
    """The library's tags that some document carries: those offered on its documents."""
    return _carried(Tag.objects.filter(library=library))


def tag_find(*, library: Library, name: str) -> Tag | None:
    """The library's tag of this name (any case), if it has one."""
    try:
        name = tag_name_clean(name)
    except TagRejected:
        return None
    return Tag.objects.filter(library=library, name__iexact=name).first()


def documents_tagged(*, documents: QuerySet[Document], name: str) -> QuerySet[Document]:
    """Those of the documents that carry a tag of this name, whichever library's (each carries
    only its own library's tags, so the name matches nothing of a library not in `documents`)."""
    try:
        name = tag_name_clean(name)
    except TagRejected:
        return documents.none()
    return documents.filter(tags__name__iexact=name).distinct()


def tag_get_or_create(*, library: Library, owner: User, name: str) -> Tag:
    """The library's tag of this name, made by `owner` if it has none."""
    name = tag_name_clean(name)
    found = tag_find(library=library, name=name)
    if found is not None:
        return found
    try:
        with transaction.atomic():
            return Tag.objects.create(library=library, owner=owner, name=name)
    except IntegrityError:
        # The same name was created meanwhile (another tab): the constraint let one through.
        found = tag_find(library=library, name=name)
        if found is None:
            raise
        return found


def document_tag_add(*, document: Document, name: str, user: User) -> Tag:
    tag = tag_get_or_create(library=document.library, owner=user, name=name)
    document.tags.add(tag)
    return tag


def document_tag_remove(*, document: Document, name: str) -> bool:
    """Take the tag off the document; False if it did not carry it."""
    tag = tag_find(library=document.library, name=name)
    if tag is None or not document.tags.filter(id=tag.id).exists():
        return False
    document.tags.remove(tag)
    return True


def document_tags_set(
    *, document: Document, names: Iterable[str], user: User | None = None
) -> list[Tag]:
    """Give the document exactly these tags of its library (made by `user`, else by the
    document's uploader, as needed)."""
    cleaned = [tag_name_clean(name) for name in names]
    with transaction.atomic():
        tags = {}
        for name in cleaned:
            tag = tag_get_or_create(
                library=document.library, owner=user or document.owner, name=name
            )
            tags[tag.id] = tag
        document.tags.set(tags.values())
    return sorted(tags.values(), key=lambda tag: tag.name.lower())

"""Deleting a person: what was theirs alone goes completely, what they shared stays.

- Their personal library goes, and its documents with everything of theirs: search entries,
  rows, page images, thumbnails and originals (`document_delete`, one document at a time).
- What they uploaded to shared libraries, and the tags they made there, stay where the other
  members see them: each library's first owner takes them (`Document.owner` is who the
  scheduler and the queue count a document against, so it names someone who is still there).
- A shared library they alone are a member of, holding no documents, goes with them.
- A shared library that would be left with members or documents but no owner refuses the
  deletion, and nothing changes: a library always keeps an owner (`memberships`).

The database keeps the second rule too: `Document.owner` and `Tag.owner` are RESTRICT, so a
person whose shared uploads were not handed over cannot be deleted at all (`User.delete()`
from a shell raises), while their personal library's rows go by its cascade.
"""

import logging
from dataclasses import dataclass

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Q, RestrictedError

from docdb.documents.models import Document, Library, Membership, Role, Tag
from docdb.documents.services import document_delete
from docdb.weaviate_store import WeaviateUnavailable

logger = logging.getLogger(__name__)


class PersonNotDeleted(Exception):
    """Why a person was not deleted; the message is fit to show."""


@dataclass(frozen=True)
class Handover:
    """A shared library where the person's uploads and tags stay, and who takes them."""

    library: Library
    heir: User
    documents: list[Document]
    tags: int


@dataclass(frozen=True)
class PersonDeletePlan:
    """What deleting the person does, read before anything changes."""

    person: User
    # The documents of their personal library: deleted with their files and search entries.
    personal_documents: list[Document]
    handovers: list[Handover]
    # Shared libraries with no other member and no documents: deleted with the person.
    libraries_deleted: list[Library]
    # Shared libraries that would keep members or documents but lose their last owner.
    libraries_refusing: list[Library]

    @property
    def refusal(self) -> str | None:
        """Why the person cannot be deleted now (None when they can), as others read it."""
        name = self.person.get_username()
        return self._refusal(f"{name} cannot be deleted yet", f"then delete {name}")

    @property
    def own_refusal(self) -> str | None:
        """`refusal` as the person reads it on their own account page."""
        return self._refusal("Your account cannot be deleted yet", "then delete your account")

    def _refusal(self, subject: str, retry: str) -> str | None:
        if not self.libraries_refusing:
            return None
        names = _names_joined([library.name for library in self.libraries_refusing])
        if len(self.libraries_refusing) == 1:
            return (
                f"{subject}: the shared library {names} would be left without an owner, and it "
                "has other members or documents. Make another member its owner, or move or "
                f"delete its documents and delete it; {retry}."
            )
        return (
            f"{subject}: the shared libraries {names} would be left without an owner, and they "
            "have other members or documents. For each, make another member an owner, or move "
            f"or delete its documents and delete the library; {retry}."
        )


def _names_joined(names: list[str]) -> str:
    quoted = [f"“{name}”" for name in names]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]


def _heir(library: Library, person: User) -> User | None:
    """The library's longest-standing owner other than the person."""
    owner = (
        Membership.objects.filter(library=library, role=Role.OWNER)
        .exclude(user=person)
        .select_related("user")
        .order_by("created_at", "id")
        .first()
    )
    return owner.user if owner is not None else None


def person_delete_plan(*, person: User) -> PersonDeletePlan:
    """What deleting the person would do, or why it is refused (`refusal`)."""
    touched = Library.objects.filter(
        Q(memberships__user=person) | Q(documents__owner=person) | Q(tags__owner=person),
        personal_of__isnull=True,
    )
    handovers, deleted, refusing = [], [], []
    for library in Library.objects.filter(pk__in=touched.values("pk")):
        heir = _heir(library, person)
        if heir is not None:
            documents = list(library.documents.filter(owner=person).order_by("created_at", "id"))
            tags = library.tags.filter(owner=person).count()
            if documents or tags:
                handovers.append(Handover(library, heir, documents, tags))
        elif library.memberships.exclude(user=person).exists() or library.documents.exists():
            refusing.append(library)
        else:
            deleted.append(library)
    personal = Document.objects.filter(library__personal_of=person).order_by("created_at", "id")
    return PersonDeletePlan(
        person=person,
        personal_documents=list(personal),
        handovers=handovers,
        libraries_deleted=deleted,
        libraries_refusing=refusing,
    )


def person_delete(*, person: User) -> PersonDeletePlan:
    """Delete the person as `person_delete_plan` says, or raise PersonNotDeleted and change
    nothing but whole documents.

    Weaviate cannot share a transaction with the database, so the personal documents go one at
    a time, each completely or not at all (`document_delete`: its search entries, then its rows
    in a transaction of their own, then its files); the person goes last, in one transaction
    with the handovers. If Weaviate is away, the person and the documents not yet reached stay
    as they were, consistent, and deleting again finishes the work. That is also why this must
    not run inside a transaction: rolled back, it would bring back rows whose search entries
    are gone.
    """
    plan = person_delete_plan(person=person)
    if plan.refusal:
        raise PersonNotDeleted(plan.refusal)
    if transaction.get_connection().in_atomic_block:
        raise RuntimeError("person_delete commits document by document: call it outside atomic()")
    name = person.get_username()
    for done, document in enumerate(plan.personal_documents):
        try:
            document_delete(document=document)
        except WeaviateUnavailable as exc:
            raise PersonNotDeleted(
                f"{name} was not deleted: the search index is not reachable ({exc}). "
                f"{done} of their {len(plan.personal_documents)} personal documents were "
                "deleted completely; the others and the account are as they were. Delete "
                f"{name} again once the search index is back."
            ) from exc
    try:
        with transaction.atomic():
            # Under the locks of the libraries they own: a co-owner stepping down meanwhile
            # waits, then finds that this person is no longer there to keep the library.
            owned = Membership.objects.filter(user=person, role=Role.OWNER).values("library")
            list(Library.objects.select_for_update().filter(pk__in=owned).order_by("pk"))
            plan = person_delete_plan(person=person)
            if plan.refusal:
                raise PersonNotDeleted(plan.refusal)
            if plan.personal_documents:
                raise PersonNotDeleted(
                    f"{name} was not deleted: documents were uploaded to their personal library "
                    f"meanwhile. Delete {name} again."
                )
            for handover in plan.handovers:
                mine = Q(library=handover.library, owner=person)
                Document.objects.filter(mine).update(owner=handover.heir)
                Tag.objects.filter(mine).update(owner=handover.heir)
            Library.objects.filter(
                pk__in=[library.pk for library in plan.libraries_deleted]
            ).delete()
            person.delete()
    except RestrictedError as exc:
        # An upload to a shared library that joined them after the plan was read.
        raise PersonNotDeleted(
            f"{name} was not deleted: they uploaded documents meanwhile. Delete {name} again."
        ) from exc
    logger.info("person %s deleted", name)
    return plan

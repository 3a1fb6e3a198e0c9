import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone

from docdb.documents.files import (
    document_prefix,
    original_name,
    page_image_name,
    page_thumbnail_name,
    stored_path,
)


class Status(models.TextChoices):
    QUEUED = "queued", "Queued"
    PROCESSING = "processing", "Processing"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


# Every state change goes through `document_transition`, which only moves along these edges.
# Which worker works on a processing document is not a state: it is the document's hold
# (`holder`, `heartbeat_at`), claimed and released by the scheduler.
TRANSITIONS: dict[str, frozenset[str]] = {
    Status.QUEUED: frozenset({Status.PROCESSING, Status.FAILED, Status.CANCELLED}),
    Status.PROCESSING: frozenset({Status.READY, Status.FAILED, Status.CANCELLED}),
    Status.READY: frozenset({Status.QUEUED}),
    Status.FAILED: frozenset({Status.QUEUED}),
    Status.CANCELLED: frozenset({Status.QUEUED}),
}
UNFINISHED = (Status.QUEUED, Status.PROCESSING)
# Why a document failed (docdb.pdf's error codes) when processing it again cannot help: the
# file itself is at fault. A password-protected one is unlocked instead.
RETRY_USELESS = frozenset({"not_pdf", "empty", "encrypted", "damaged"})


def _original_upload_to(document: "Document", _filename: str) -> str:
    return original_name(document.id)


MAX_LIBRARY_NAME_LENGTH = 100
# The largest id a row has (BigAutoField) and the largest page number (PositiveIntegerField):
# a larger number from a request matches nothing, and must not reach the database, which
# refuses to compare with it (SQLite cannot even bind it: a 500 instead of "no such library").
ID_MAX = 2**63 - 1
PAGE_NUMBER_MAX = 2**31 - 1


def number_parse(raw: str, *, maximum: int = ID_MAX) -> int | None:
    """A request parameter as a number a column can hold, else None."""
    raw = raw.strip()
    if not raw.isdigit() or len(raw) > len(str(maximum)) or int(raw) > maximum:
        return None
    return int(raw)


class Role(models.TextChoices):
    """What a member may do in a library; each role may do everything the ones before it may."""

    VIEWER = "viewer", "Viewer"  # search and read
    EDITOR = "editor", "Editor"  # also upload, rename, tag, move, re-run and delete documents
    OWNER = "owner", "Owner"  # also rename the library and manage its members


# Roles in the order of what they allow, for "at least this role" checks.
ROLE_RANK = {Role.VIEWER: 1, Role.EDITOR: 2, Role.OWNER: 3}


PERSONAL_LIBRARY_NAME = "Personal"


class LibraryManager(models.Manager["Library"]):
    def personal(self, user: User) -> "Library":
        """The person's personal library, made (with them as its owner) the first time."""
        library, created = self.get_or_create(
            personal_of=user, defaults={"name": PERSONAL_LIBRARY_NAME}
        )
        if created:
            Membership.objects.get_or_create(
                library=library, user=user, defaults={"role": Role.OWNER}
            )
        return library


class Library(models.Model):
    """A collection of documents shared by its members. Every document belongs to one; each
    person has a personal library of their own (`personal_of`), made when first needed."""

    name = models.CharField(max_length=MAX_LIBRARY_NAME_LENGTH)
    # The person whose personal library this is; null for a shared library. A personal library
    # is where a person's uploads go unless they pick another.
    personal_of = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="personal_library",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = LibraryManager()

    class Meta:
        ordering = [Lower("name"), "id"]
        verbose_name_plural = "libraries"

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    """A person's role in a library. Access is read from these rows on every request, so a
    member removed or demoted loses access at once."""

    library = models.ForeignKey(Library, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.VIEWER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["library", "user"], name="membership_library_user_uniq"
            ),
        ]
        indexes = [
            # Every request: the libraries a person may see, and their role in each.
            models.Index(fields=["user", "library"], name="membership_user_library_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.library} ({self.role})"


MAX_TAG_LENGTH = 50


class Tag(models.Model):
    """A label on a library's documents, shared by the library's members."""

    # Who made the tag, or took it over when they were deleted (RESTRICT: a person whose tags
    # in shared libraries were not handed over cannot be deleted; `documents.people`).
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.RESTRICT, related_name="tags"
    )
    library = models.ForeignKey(Library, on_delete=models.CASCADE, related_name="tags")
    name = models.CharField(max_length=MAX_TAG_LENGTH)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = [Lower("name")]
        constraints = [
            # "Tax" and "tax" are one tag of a library's (two tabs creating it race to this).
            models.UniqueConstraint(
                models.F("library"), Lower("name"), name="tag_library_name_uniq"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.library_id is None:
            self.library = Library.objects.personal(self.owner)
        super().save(*args, **kwargs)


class Document(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # Who uploaded the document: the scheduler shares workers fairly between uploaders. When
    # the uploader is deleted, an owner of the library takes it; RESTRICT keeps a person whose
    # shared uploads were not handed over from being deleted (`documents.people`), while their
    # personal library's documents go by its cascade.
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.RESTRICT, related_name="documents"
    )
    # Where the document lives: who may see and change it follows from the library's members.
    library = models.ForeignKey(Library, on_delete=models.CASCADE, related_name="documents")
    title = models.CharField(max_length=300)
    original_name = models.CharField(max_length=300)
    file = models.FileField(upload_to=_original_upload_to, max_length=300)
    size_bytes = models.BigIntegerField(default=0)
    sha256 = models.CharField(max_length=64)
    # A second copy of a file its owner had already uploaded, made before one copy per owner
    # was enforced (migration 0006 marks them). Kept: deleting people's documents is theirs
    # to do. Only unmarked documents are unique per owner and checksum.
    legacy_duplicate = models.BooleanField(default=False, editable=False)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED)
    pages_total = models.PositiveIntegerField(default=0)
    pages_done = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    # What kind of failure `error` describes, for programs: a docdb.pdf error code ("" for
    # other failures).
    error_code = models.CharField(max_length=20, blank=True)
    # How often a worker died (its hold expired) while it worked on this document; bounded so a
    # file that kills the worker every time fails instead of looping forever.
    resume_count = models.PositiveIntegerField(default=0)
    # The hold: which task works on the document now, and when it last said it is alive. A
    # hold whose heartbeat is older than DOCDB_PIPELINE_HOLD_SECONDS belongs to a dead worker.
    holder = models.CharField(max_length=200, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    # When the document's last turn (one page range) was claimed: the scheduler serves the
    # person whose documents had a turn least recently first.
    turn_at = models.DateTimeField(null=True, blank=True)
    # After a transient error (Weaviate or the embedder away), no turn before this time.
    retry_at = models.DateTimeField(null=True, blank=True)
    retries = models.PositiveIntegerField(default=0)
    # Seconds that workers spent on the document's pages: the measured page rate for estimates.
    work_seconds = models.FloatField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Only tags of the document's library (docdb.documents.tags keeps it so).
    tags = models.ManyToManyField(Tag, related_name="documents", blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            # The documents list: the documents of a person's libraries, newest first.
            models.Index(fields=["library", "-created_at"], name="document_library_created_idx"),
            # Duplicate detection at upload: does this library already hold this file (any copy)?
            models.Index(fields=["library", "sha256"], name="document_library_sha256_idx"),
            # The sweeper and the operations page look documents up by state.
            models.Index(fields=["status"], name="document_status_idx"),
            # The scheduler: unfinished documents of each person, in upload order.
            models.Index(fields=["status", "owner", "created_at"], name="document_turn_idx"),
        ]
        constraints = [
            # One document per library and file, even when two uploads of it race: the second
            # insert fails, and the upload answers it as a duplicate of the first.
            models.UniqueConstraint(
                fields=["library", "sha256"],
                condition=models.Q(legacy_duplicate=False),
                name="document_library_sha256_uniq",
            ),
        ]

    def __str__(self) -> str:
        return self.title

    def save(self, *args: Any, **kwargs: Any) -> None:
        # A document given no library goes to its uploader's personal one.
        if self.library_id is None:
            self.library = Library.objects.personal(self.owner)
        super().save(*args, **kwargs)

    @property
    def original_file(self) -> str:
        """The stored original's name in the storage."""
        return self.file.name or original_name(self.id)

    @property
    def directory(self) -> Path:
        """The folder of its files on a local storage (tests look into it); DocDB itself goes
        through `docdb.documents.files`, which works with a bucket too."""
        return stored_path(document_prefix(self.id))

    @property
    def is_terminal(self) -> bool:
        return self.status not in UNFINISHED

    @property
    def can_retry(self) -> bool:
        """Whether processing it again may end differently (a timeout, a worker's error)."""
        return self.status in (Status.FAILED, Status.CANCELLED) and (
            self.status == Status.CANCELLED or self.error_code not in RETRY_USELESS
        )

    @property
    def needs_password(self) -> bool:
        return self.status == Status.FAILED and self.error_code == "encrypted"

    @property
    def progress_percent(self) -> int:
        if not self.pages_total:
            return 0
        return min(100, round(100 * self.pages_done / self.pages_total))


class TextSource(models.TextChoices):
    """Where a page's text came from."""

    LAYER = "layer", "Text layer"
    OCR = "ocr", "OCR"
    NONE = "none", "None"  # neither: found by its image only


class Page(models.Model):
    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="pages")
    number = models.PositiveIntegerField()
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    text = models.TextField(blank=True)
    text_source = models.CharField(
        max_length=8, choices=TextSource.choices, default=TextSource.LAYER
    )
    indexed_at = models.DateTimeField(null=True, blank=True)
    # The id of the page's object in Weaviate (uuid5 of document and number): search results
    # come back as these ids alone, and are joined to the owner's pages through it.
    search_id = models.UUIDField(null=True, blank=True, unique=True, editable=False)

    class Meta:
        ordering = ["document", "number"]
        constraints = [
            models.UniqueConstraint(
                fields=["document", "number"], name="page_document_number_uniq"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.document} p. {self.number}"

    @property
    def image_name(self) -> str:
        return page_image_name(self.document_id, self.number)

    @property
    def thumbnail_name(self) -> str:
        return page_thumbnail_name(self.document_id, self.number)

    # The files on a local storage, as `Document.directory`.
    @property
    def image_path(self) -> Path:
        return stored_path(self.image_name)

    @property
    def thumbnail_path(self) -> Path:
        return stored_path(self.thumbnail_name)


class DamagedPage(models.Model):
    """A page no PDF engine could render: the document is ready without it, and says so."""

    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="damaged_pages")
    number = models.PositiveIntegerField()
    reason = models.CharField(max_length=300)

    class Meta:
        ordering = ["document", "number"]
        constraints = [
            # A range rendered again replaces its pages' rows; also the document's list, in order.
            models.UniqueConstraint(
                fields=["document", "number"], name="damagedpage_document_number_uniq"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.document} p. {self.number}: {self.reason}"


class RunKind(models.TextChoices):
    PROCESS = "process", "Process"  # render, read and index every page
    REIMPORT = "reimport", "Re-import"  # stored page images into Weaviate only
    REPAIR = "repair", "Repair"  # the consistency repair of the operations page


class RunState(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    RETRYING = "retrying", "Waiting to retry"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    SKIPPED = "skipped", "Skipped"


RUN_UNFINISHED = (RunState.QUEUED, RunState.RUNNING, RunState.RETRYING)


class PipelineRun(models.Model):
    """A record of every pipeline run: created when the work is queued, updated by its tasks."""

    # The id of the task that starts the run (later tasks of a chain update the same row).
    task_id = models.CharField(max_length=64)
    kind = models.CharField(max_length=20, choices=RunKind.choices, default=RunKind.PROCESS)
    # Kept when the document is deleted: the history of what ran stays readable.
    document = models.ForeignKey(
        Document, null=True, blank=True, on_delete=models.SET_NULL, related_name="runs"
    )
    state = models.CharField(max_length=20, choices=RunState.choices, default=RunState.QUEUED)
    queued_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    worker = models.CharField(max_length=200, blank=True)
    summary = models.CharField(max_length=500, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        # The ops app owned the model first and made its table; the rows stay where they are.
        db_table = "ops_pipelinerun"
        ordering = ["-queued_at"]
        constraints = [
            # Tasks find their run by task id.
            models.UniqueConstraint(fields=["task_id"], name="pipelinerun_task_id_uniq"),
        ]
        indexes = [
            # A document's runs, newest first (document page, range tasks finding their run).
            models.Index(fields=["document", "-queued_at"], name="pipelinerun_document_idx"),
            # The operations page: unfinished runs, oldest first, to spot stuck work.
            models.Index(fields=["state", "queued_at"], name="pipelinerun_state_idx"),
            # The admin list, newest first.
            models.Index(fields=["-queued_at"], name="pipelinerun_queued_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.task_id}"

    @property
    def is_finished(self) -> bool:
        return self.state not in RUN_UNFINISHED

    @property
    def duration(self) -> timedelta | None:
        """Time from the first task's start to the end (or to now while it runs)."""
        if self.started_at is None:
            return None
        return (self.finished_at or timezone.now()) - self.started_at

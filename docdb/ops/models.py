"""A record of every pipeline run: created when the work is queued, updated by its tasks."""

from datetime import timedelta

from django.db import models
from django.utils import timezone

from docdb.documents.models import Document


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


UNFINISHED = (RunState.QUEUED, RunState.RUNNING, RunState.RETRYING)


class PipelineRun(models.Model):
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
        return self.state not in UNFINISHED

    @property
    def duration(self) -> timedelta | None:
        """Time from the first task's start to the end (or to now while it runs)."""
        if self.started_at is None:
            return None
        return (self.finished_at or timezone.now()) - self.started_at
